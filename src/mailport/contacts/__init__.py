"""Contacts harvested from mail (issue 18): who a mailbox really corresponds with."""
