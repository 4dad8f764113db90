"""Declarative accounts: ``mailport apply FILE`` and ``mailport export`` (docs/accounts.md).

One file declares tenants with their mailboxes, webhooks and OAuth apps. ``apply`` reads it
(:mod:`.load`), resolves its secret references (:mod:`.secrets`), compares it with what the
service holds (:mod:`.state`, :mod:`.views`) into a plan of creations, changes and deletions
(:mod:`.plan`), and carries the plan out through the services the API uses (:mod:`.execute`);
OAuth mailboxes get connect links (:mod:`.links`). ``export`` writes the state back as such a
file (:mod:`.export`). Everything but the file format is code that already existed: the request
models, the checks and the writes are the API's.
"""
