"""shared.auth: a token's signature is checked once and remembered, but a remembered token still
expires, and a bad one is refused every time."""

from __future__ import annotations

import pytest

from shared import auth
from shared.auth import Role, Unauthorized, decode_token, mint_token

SECRET = "s" * 32


def test_a_token_is_verified_once_and_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = mint_token(SECRET, subject="cw-1", role=Role.CASEWORKER, province="01", ttl=60)
    calls = 0
    real = auth.jwt.decode

    def counting(*args: object, **kw: object) -> object:
        nonlocal calls
        calls += 1
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(auth.jwt, "decode", counting)
    first = decode_token(SECRET, token)
    assert decode_token(SECRET, token) == first and first.province == "01"
    assert calls == 1
    # An hour later the remembered token has expired.
    now = auth.time.time()
    monkeypatch.setattr(auth.time, "time", lambda: now + 3600)
    with pytest.raises(Unauthorized, match="expired"):
        decode_token(SECRET, token)


def test_a_token_signed_with_another_secret_is_refused_every_time() -> None:
    token = mint_token("x" * 32, subject="cw-1", role=Role.CASEWORKER, province="01")
    decode_token("x" * 32, token)  # remembered under its own secret only
    for _ in range(2):
        with pytest.raises(Unauthorized, match="not valid"):
            decode_token(SECRET, token)
