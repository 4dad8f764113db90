"""Mailboxes: what a tenant connects (servers, credentials, processing settings, health)."""
