"""Reads beside the writer on SQLite: a report does not wait for a consumer's open transaction,
and a read session cannot write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shared.db import make_engine, make_read_engine, make_sessionmaker


async def test_a_read_session_runs_while_the_writer_holds_its_transaction(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'rw.db'}"
    writer = make_engine(url)
    reader = make_read_engine(url)
    assert reader is not None
    try:
        async with writer.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        reads = make_sessionmaker(reader)
        async with writer.begin() as conn:  # BEGIN IMMEDIATE: the write lock is held
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            async with reads() as session:
                # Answers at once from the last commit, instead of waiting for this one.
                seen = await asyncio.wait_for(session.execute(text("SELECT count(*) FROM t")), 2)
                assert seen.scalar_one() == 1
        async with reads() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2
            with pytest.raises(OperationalError, match="readonly"):
                await session.execute(text("INSERT INTO t VALUES (3)"))
    finally:
        await writer.dispose()
        await reader.dispose()
