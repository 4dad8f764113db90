"""Network safety for connections the service opens on a user's behalf.

* :mod:`mailport.net.guard` — the SSRF guard (resolve once, refuse private/metadata addresses,
  connect to exactly the vetted addresses);
* :mod:`mailport.net.addresses` — IP literal parsing and address classification;
* :mod:`mailport.net.resolve` — injectable resolvers (system, dnspython);
* :mod:`mailport.net.ratelimit` — a per-tenant token bucket for ``/v1/check``;
* :mod:`mailport.net.trust` — which certificates a mail server may present: the TLS client
  context for every IMAP/SMTP connection (system CAs plus ``MAILPORT_MAIL_CA_FILE``, or a
  server's pinned certificate). It builds contexts only; opening connections is the guard's job.
"""
