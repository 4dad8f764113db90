"""mailport's real mail test bed: Dovecot, an SMTP submission server and an OAuth2 server.

Started by the session fixtures in ``tests/conftest.py`` on free loopback ports.
"""
