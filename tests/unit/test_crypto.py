import base64
import stat
from pathlib import Path

import pytest

from shared.crypto import (
    BlindIndex,
    DecryptionError,
    FieldCipher,
    KeyRing,
    KeySpecError,
    ensure_key_file,
    generate_key_spec,
)

CTX = "case:42:phone"


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(KeyRing.parse(generate_key_spec("k1")))


def test_round_trip(cipher: FieldCipher) -> None:
    token = cipher.encrypt("Nguyễn Thị Hòa", CTX)
    assert token.startswith("v1.k1.")
    assert "Hòa" not in token
    assert cipher.decrypt(token, CTX) == "Nguyễn Thị Hòa"


def test_same_plaintext_gives_different_tokens(cipher: FieldCipher) -> None:
    assert cipher.encrypt("x", CTX) != cipher.encrypt("x", CTX)


def test_tampering_is_detected(cipher: FieldCipher) -> None:
    token = cipher.encrypt("+84912345678", CTX)
    head, payload = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[-1] ^= 1
    forged = head + "." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(DecryptionError):
        cipher.decrypt(forged, CTX)
    for broken in ["", "v1", "v2.k1." + payload, token[:-10], "v1.k1.!!!"]:
        with pytest.raises(DecryptionError):
            cipher.decrypt(broken, CTX)


def test_wrong_context_is_rejected(cipher: FieldCipher) -> None:
    token = cipher.encrypt("+84912345678", CTX)
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, "case:43:phone")
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, "case:42:name")


def test_rotation() -> None:
    old_spec = generate_key_spec("k1")
    old = FieldCipher(KeyRing.parse(old_spec))
    token = old.encrypt("secret", CTX)

    # New key listed first, so it becomes active; the old key stays for reading.
    rotated = FieldCipher(KeyRing.parse(f"{generate_key_spec('k2')},{old_spec}"))
    assert rotated.keyring.active == "k2"
    assert rotated.decrypt(token, CTX) == "secret"
    assert rotated.needs_rotation(token)

    fresh = rotated.encrypt("secret", CTX)
    assert fresh.startswith("v1.k2.")
    assert not rotated.needs_rotation(fresh)
    with pytest.raises(DecryptionError, match="unknown key id"):
        old.decrypt(fresh, CTX)


def test_explicit_active_key() -> None:
    ring = KeyRing.parse(f"{generate_key_spec('a')}, {generate_key_spec('b')}", active="b")
    assert ring.active == "b"
    assert "b" in repr(ring) and ring.keys["b"].hex() not in repr(ring)


@pytest.mark.parametrize(
    "spec",
    ["", "nokey", "k1:" + base64.b64encode(b"short").decode(), "k.1:" + "A" * 43, "k1:%%%"],
)
def test_bad_specs_are_rejected(spec: str) -> None:
    with pytest.raises(KeySpecError):
        KeyRing.parse(spec)


def test_active_key_must_exist() -> None:
    with pytest.raises(KeySpecError, match="not in the key ring"):
        KeyRing.parse(generate_key_spec("a"), active="b")


def test_standard_base64_keys_are_accepted() -> None:
    key = bytes(range(250, 256)) * 5 + b"\xff\xfe"  # encodes with "+" and "/" in standard base64
    ring = KeyRing.parse("std:" + base64.b64encode(key).decode())
    assert ring.keys["std"] == key


def test_blind_index_is_deterministic_and_separates_purposes() -> None:
    index = BlindIndex(b"k" * 32)
    phone = index.digest("+84912345678", "phone")
    assert phone == index.digest("+84912345678", "phone")
    assert len(phone) == 32 and int(phone, 16) >= 0
    assert phone != index.digest("+84912345678", "cccd")
    assert phone != index.digest("+84912345679", "phone")
    assert phone != BlindIndex(b"j" * 32).digest("+84912345678", "phone")
    with pytest.raises(ValueError):
        index.digest("x", "pho\x00ne")


def test_ensure_key_file_creates_once_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "field.key"
    spec = ensure_key_file(path, kid="dev1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.parse(spec).active == "dev1"
    assert ensure_key_file(path) == spec
    assert sorted(p.name for p in path.parent.iterdir()) == ["field.key"]  # no temp files left behind
