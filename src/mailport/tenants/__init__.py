"""Tenants (the organisations using one mailport instance) and their API keys."""
