"""Encryption of her identifying fields and the keyed hashes that find them without decrypting."""

from __future__ import annotations

import base64

from services.intake.settings import IntakeSettings
from shared.crypto import BlindIndex, FieldCipher, KeyRing, ensure_key_file, ensure_secret_file


class Protector:
    def __init__(self, settings: IntakeSettings) -> None:
        keys_dir = settings.platform.data_dir / "keys"
        spec = settings.field_keys or ensure_key_file(keys_dir / "intake-field-keys")
        self.cipher = FieldCipher(KeyRing.parse(spec, settings.active_key_id))
        index_key = settings.blind_index_key or ensure_secret_file(keys_dir / "intake-blind-index")
        self.index = BlindIndex(base64.urlsafe_b64decode(index_key + "=" * (-len(index_key) % 4)))

    def encrypt(self, value: str, case_id: str, field: str) -> str:
        return self.cipher.encrypt(value, f"case:{case_id}:{field}")

    def decrypt(self, token: str, case_id: str, field: str) -> str:
        return self.cipher.decrypt(token, f"case:{case_id}:{field}")

    def phone_index(self, e164: str) -> str:
        return self.index.digest(e164, "phone")
