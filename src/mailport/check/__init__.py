"""Connection checks: test a mailbox's IMAP and SMTP settings step by step and explain failures.

:mod:`mailport.check.troubleshoot` turns a failing step (and the server's own words) into a
stable code and a hint that names the fix.
"""
