"""Secrets at rest: a key ring over cryptography's MultiFernet, and a secret type that never prints."""

from mailport.crypto.keyring import KeyRing, generate_key, load_key_ring
from mailport.crypto.secret import Secret

__all__ = ["KeyRing", "Secret", "generate_key", "load_key_ring"]
