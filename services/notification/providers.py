"""SMS provider adapters behind one interface."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson

from shared.phones import mask


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class SmsProvider(Protocol):
    async def send(self, *, message_id: str, to: str, sender: str, text: str) -> SendResult: ...


class FileProvider:
    """Development provider: appends each message as a JSON line a person can read.

    The number is masked: the file is a stand-in for the gateway, not a place to keep her phone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()

    async def send(self, *, message_id: str, to: str, sender: str, text: str) -> SendResult:
        line = orjson.dumps(
            {
                "message_id": message_id,
                "to": mask(to),
                "sender": sender,
                "text": text,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        async with self._lock:
            with self.path.open("ab") as f:
                f.write(line + b"\n")
        return SendResult(provider_message_id=f"file:{message_id}")
