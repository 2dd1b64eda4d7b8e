"""End-to-end encrypted channels (``private-encrypted-``): NaCl secretbox, as pusher-js and the
official server SDKs use it. The event ``data`` is ``{"nonce": b64(24 B), "ciphertext": b64(MAC||ct)}``
and the key is the 32-byte ``shared_secret`` from the channel's auth response."""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

import orjson
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

KEY_SIZE = SecretBox.KEY_SIZE
_NONCE_SIZE = SecretBox.NONCE_SIZE
_MAC_SIZE = SecretBox.MACBYTES


class DecryptFailed(Exception):
    """Decryption failed. ``wrong_key`` is True when the box did not open (a rotated key may help);
    False when the payload itself is malformed (a new key cannot help)."""

    def __init__(self, reason: str, *, wrong_key: bool) -> None:
        self.reason = reason
        self.wrong_key = wrong_key
        super().__init__(reason)


def make_box(key: bytes) -> SecretBox:
    """A secretbox for ``key``; raises ``ValueError`` when the key is not 32 bytes."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"shared_secret must be {KEY_SIZE} bytes, got {len(key)}")
    return SecretBox(key)


def decode_key(value: str) -> bytes:
    """The 32-byte key in the base64 string ``value`` (a channel's ``shared_secret``, a server's
    ``encryption_master_key_base64``); raises ``ValueError`` saying what is wrong."""
    try:
        key = b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("it is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise ValueError(f"it decodes to {len(key)} bytes, not {KEY_SIZE}")
    return key


def decrypt(box: SecretBox, data: Any) -> Any:
    """Open an encrypted payload and decode it as pusher-js does (JSON if it parses, else the string)."""
    if type(data) is not dict:
        raise DecryptFailed("encrypted data is not an object with 'nonce' and 'ciphertext'", wrong_key=False)
    nonce_b64 = data.get("nonce")
    ct_b64 = data.get("ciphertext")
    if type(nonce_b64) is not str or type(ct_b64) is not str:
        raise DecryptFailed("encrypted data lacks string 'nonce' and 'ciphertext'", wrong_key=False)
    try:
        nonce = b64decode(nonce_b64, validate=True)
        ciphertext = b64decode(ct_b64, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptFailed("'nonce' or 'ciphertext' is not valid base64", wrong_key=False) from None
    if len(nonce) != _NONCE_SIZE:
        raise DecryptFailed(f"nonce is {len(nonce)} bytes, expected {_NONCE_SIZE}", wrong_key=False)
    if len(ciphertext) < _MAC_SIZE:
        raise DecryptFailed(f"ciphertext is shorter than the {_MAC_SIZE}-byte MAC", wrong_key=False)
    try:
        plain = box.decrypt(ciphertext, nonce)
    except CryptoError:
        raise DecryptFailed("the box did not open with the channel's key", wrong_key=True) from None
    try:
        text = plain.decode()
    except UnicodeDecodeError:
        raise DecryptFailed("decrypted payload is not UTF-8", wrong_key=False) from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
