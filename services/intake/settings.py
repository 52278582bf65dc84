"""Intake settings: ``OSSO_INTAKE_*`` (plus the shared ``OSSO_*``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_PORTS, ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OSSO_INTAKE_", extra="ignore")

    port: int = DEFAULT_PORTS["intake"]
    #: Field-encryption keys "kid:base64key,..."; empty means a development key file under the data dir.
    field_keys: str = ""
    #: The key id new ciphertexts use (defaults to the first key).
    active_key_id: str | None = None
    #: Key of the keyed hashes used to search ciphertext; empty means a development key file.
    blind_index_key: str = ""
    #: Largest request body accepted, in bytes (a full case file is a few KB).
    max_body_bytes: int = 64 * 1024
