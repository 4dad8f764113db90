"""Secrets at rest: a key ring over cryptography's MultiFernet, a secret type that never prints,
and a sealed secret that stays ciphertext until it is used."""

from mailport.crypto.keyring import KeyRing, generate_key, load_key_ring
from mailport.crypto.sealed import Cipher, Sealed
from mailport.crypto.secret import Secret

__all__ = ["Cipher", "KeyRing", "Sealed", "Secret", "generate_key", "load_key_ring"]
