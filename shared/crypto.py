"""Field-level encryption (AES-256-GCM) with key rotation, and blind indexes for equality search.

Tokens look like "v1.<kid>.<urlsafe-b64(nonce + ciphertext)>". The key id lets old rows be read
after a new key becomes active; the caller's `context` (e.g. "case:<id>:phone") is authenticated
as associated data, so a ciphertext copied to another row or field fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12  # the AES-GCM standard nonce; random nonces are safe well beyond our volumes
_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # no ".", ":" or ",": they delimit tokens and specs


class DecryptionError(Exception):
    pass


class KeySpecError(ValueError):
    pass


def _b64decode(text: str) -> bytes:
    # Accept standard and URL-safe alphabets, with or without padding.
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class KeyRing:
    """Named 32-byte keys; `active` encrypts, all of them decrypt."""

    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        if not keys:
            raise KeySpecError("key ring is empty")
        for kid, key in keys.items():
            if not _KID_RE.fullmatch(kid):
                raise KeySpecError(f"invalid key id {kid!r}: use 1-32 letters, digits, '-' or '_'")
            if len(key) != _KEY_BYTES:
                raise KeySpecError(f"key {kid!r} has {len(key)} bytes, expected {_KEY_BYTES}")
        if active not in keys:
            raise KeySpecError(f"active key {active!r} is not in the key ring ({', '.join(keys)})")
        self.keys = dict(keys)
        self.active = active

    @classmethod
    def parse(cls, spec: str, active: str | None = None) -> KeyRing:
        """Build from "kid1:base64key,kid2:base64key"; the active key defaults to the first."""
        keys: dict[str, bytes] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise KeySpecError("key spec entries must look like 'kid:base64key'")
            if kid in keys:
                raise KeySpecError(f"duplicate key id {kid!r}")
            try:
                keys[kid] = _b64decode(encoded)
            except (binascii.Error, ValueError):
                # Never echo the spec: it is secret.
                raise KeySpecError(f"key {kid!r} is not valid base64") from None
        return cls(keys, active if active is not None else next(iter(keys), ""))

    def key(self, kid: str) -> bytes:
        try:
            return self.keys[kid]
        except KeyError:
            raise DecryptionError(f"unknown key id {kid!r}") from None

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"KeyRing(kids={list(self.keys)}, active={self.active!r})"


def generate_key_spec(kid: str) -> str:
    """A new "kid:base64key" entry with a random 32-byte key."""
    if not _KID_RE.fullmatch(kid):
        raise KeySpecError(f"invalid key id {kid!r}: use 1-32 letters, digits, '-' or '_'")
    return f"{kid}:{_b64encode(secrets.token_bytes(_KEY_BYTES))}"


def _associated_data(kid: str, context: str) -> bytes:
    # The header is authenticated along with the context, so neither can be swapped.
    return f"{_VERSION}.{kid}.{context}".encode()


class FieldCipher:
    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    def encrypt(self, plaintext: str, context: str) -> str:
        kid = self.keyring.active
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keyring.key(kid)).encrypt(
            nonce, plaintext.encode(), _associated_data(kid, context)
        )
        return f"{_VERSION}.{kid}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, context: str) -> str:
        kid, payload = _split(token)
        try:
            data = _b64decode(payload)
        except (binascii.Error, ValueError):
            raise DecryptionError("malformed token: payload is not base64") from None
        nonce, sealed = data[:_NONCE_BYTES], data[_NONCE_BYTES:]
        try:
            plain = AESGCM(self.keyring.key(kid)).decrypt(nonce, sealed, _associated_data(kid, context))
        except (InvalidTag, ValueError):
            raise DecryptionError("token was tampered with or belongs to another context") from None
        return plain.decode()

    def needs_rotation(self, token: str) -> bool:
        """Whether the token was sealed with a key other than the active one (re-encrypt it)."""
        return _split(token)[0] != self.keyring.active


def _split(token: str) -> tuple[str, str]:
    version, _, rest = token.partition(".")
    kid, sep, payload = rest.partition(".")
    if version != _VERSION or not sep:
        raise DecryptionError(f"malformed token: expected '{_VERSION}.<kid>.<data>'")
    return kid, payload


class BlindIndex:
    """Keyed hashes of normalised values, for equality lookups on encrypted fields."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise KeySpecError("blind index key must have at least 16 bytes")
        self._key = key

    def digest(self, value: str, purpose: str) -> str:
        """HMAC-SHA256 of purpose + NUL + value, as 32 hex chars. Normalise `value` first (fold, E.164)."""
        if "\x00" in purpose:
            # The separator must not occur in the purpose, or ("a", "b\x00c") and ("a\x00b", "c") collide.
            raise ValueError("purpose must not contain NUL")
        message = f"{purpose}\x00{value}".encode()
        # hmac.digest is OpenSSL's one-shot HMAC: a third of hmac.new(...).hexdigest()'s cost.
        return hmac.digest(self._key, message, "sha256").hex()[:32]

    def __repr__(self) -> str:
        return "BlindIndex(<key hidden>)"


def ensure_secret_file(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """Read a secret from ``path``, creating it (mode 0600) with ``make()`` on first run. For development."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Services may start together on first run: write a private temp file, then hard-link it into
        # place, which fails if another process won; everyone then reads the same, complete file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(make() + "\n")
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()


def ensure_key_file(path: Path, kid: str = "dev1") -> str:
    """Read a key spec from `path`, creating it (mode 0600) with a fresh key on first run. For development."""
    spec = ensure_secret_file(path, lambda: generate_key_spec(kid))
    KeyRing.parse(spec)  # fail early on a corrupt file
    return spec
