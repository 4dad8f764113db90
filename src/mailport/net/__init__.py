"""Network safety for connections the service opens on a user's behalf.

* :mod:`mailport.net.guard` — the SSRF guard (resolve once, refuse private/metadata addresses,
  connect to exactly the vetted addresses);
* :mod:`mailport.net.addresses` — IP literal parsing and address classification;
* :mod:`mailport.net.resolve` — injectable resolvers (system, dnspython);
* :mod:`mailport.net.ratelimit` — a per-tenant token bucket for ``/v1/check``.
"""
