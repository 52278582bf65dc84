"""Encryption of her identifying fields and the keyed hashes that find them without decrypting.

Each case has its own data key (32 random bytes), stored only wrapped by the master key ring
(AES-GCM, with the master key id, so master keys rotate without touching case data). Her fields
are sealed under the data key. Erasure deletes the wrapped key: the ciphertext left in backups or
free database pages can never be read again (crypto-shredding).
"""

from __future__ import annotations

import base64
import os
import secrets

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.intake.domain import Identity, SearchKey, search_keys
from services.intake.settings import IntakeSettings
from shared.crypto import (
    BlindIndex,
    DecryptionError,
    FieldCipher,
    KeyRing,
    ensure_key_file,
    ensure_secret_file,
)

_SEALED_VERSION = "d1"


class CaseKey:
    """A case's own data key: seals and opens that case's fields (context-bound, AES-GCM)."""

    def __init__(self, case_id: str, key: bytes) -> None:
        self.case_id = case_id
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, field: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, f"case:{self.case_id}:{field}".encode())
        return f"{_SEALED_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, token: str, field: str) -> bytes:
        version, _, payload = token.partition(".")
        if version != _SEALED_VERSION:
            raise DecryptionError("malformed case-sealed token")
        data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        try:
            return self._aead.decrypt(data[:12], data[12:], f"case:{self.case_id}:{field}".encode())
        except (InvalidTag, ValueError):
            raise DecryptionError("token was tampered with or belongs to another case or field") from None

    def __repr__(self) -> str:
        return f"CaseKey({self.case_id!r}, <key hidden>)"


class Protector:
    def __init__(self, settings: IntakeSettings) -> None:
        keys_dir = settings.platform.data_dir / "keys"
        spec = settings.field_keys or ensure_key_file(keys_dir / "intake-field-keys")
        self.cipher = FieldCipher(KeyRing.parse(spec, settings.active_key_id))
        index_key = settings.blind_index_key or ensure_secret_file(keys_dir / "intake-blind-index")
        self.index = BlindIndex(base64.urlsafe_b64decode(index_key + "=" * (-len(index_key) % 4)))

    # -- per-case data keys ------------------------------------------------------------------------
    def new_case_key(self, case_id: str) -> tuple[CaseKey, str]:
        """A fresh data key for a case and its wrapped form (what the database keeps)."""
        raw = secrets.token_bytes(32)
        wrapped = self.cipher.encrypt(base64.urlsafe_b64encode(raw).decode(), f"case:{case_id}:dek")
        return CaseKey(case_id, raw), wrapped

    def unwrap(self, case_id: str, wrapped: str) -> CaseKey:
        raw = base64.urlsafe_b64decode(self.cipher.decrypt(wrapped, f"case:{case_id}:dek"))
        return CaseKey(case_id, raw)

    def rewrap(self, case_id: str, wrapped: str) -> str | None:
        """The wrapped key re-sealed under the active master key, or None if it already is."""
        if not self.cipher.needs_rotation(wrapped):
            return None
        return self.cipher.encrypt(self.cipher.decrypt(wrapped, f"case:{case_id}:dek"), f"case:{case_id}:dek")

    # -- her identity as one sealed document -------------------------------------------------------
    @staticmethod
    def seal_identity(key: CaseKey, identity: Identity) -> str:
        return key.seal(orjson.dumps(identity.to_json()), "identity")

    @staticmethod
    def open_identity(key: CaseKey, token: str) -> Identity:
        return Identity.from_json(orjson.loads(key.open(token, "identity")))

    # -- blind indexes -----------------------------------------------------------------------------
    def digest(self, key: SearchKey) -> str:
        return self.index.digest(key.value, key.kind)

    def lookup_pairs(self, identity: Identity, province: str) -> list[tuple[str, str]]:
        """``(kind, keyed hash)`` of everything that finds her: what registration and edits index."""
        return [(k.kind, self.digest(k)) for k in search_keys(identity, province)]

    def phone_index(self, e164: str) -> str:
        return self.index.digest(e164, "phone")
