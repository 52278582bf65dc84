"""``osso referral ...``: partner-directory and partner-access tasks for ops."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import nats
import typer

from services.referral.directory import DirectoryError
from services.referral.natsaccess import ensure_partner_consumer, new_password, render_authorization
from services.referral.seed import read_directory

app = typer.Typer(help="Partner directory and partner NATS access.", no_args_is_help=True)

DirectoryFile = Annotated[Path, typer.Option(help="HSDS 3.0 directory file")]


def _partner_ids(directory: Path) -> list[str]:
    return [o.id for o in read_directory(directory.read_bytes()).organizations]


@app.command("check-hsds")
def check_hsds(path: Annotated[Path, typer.Argument(help="HSDS 3.0 JSON file")]) -> None:
    """Validate a directory file; lists every error (exit 1) or what it holds."""
    try:
        directory = read_directory(path.read_bytes())
    except DirectoryError as exc:
        for error in exc.errors:
            typer.echo(error, err=True)
        raise typer.Exit(1) from None
    services = sum(len(o.services) for o in directory.organizations)
    typer.echo(f"ok: {len(directory.organizations)} partners, {services} services")


@app.command("nats-users")
def nats_users(
    directory: DirectoryFile = Path("deploy/demo/partners.json"),
    out: Annotated[Path, typer.Option(help="authorization block to include")] = Path("var/nats/auth.conf"),
    secrets_file: Annotated[Path, typer.Option(help="passwords, kept across runs")] = Path(
        "var/keys/nats-users.json"
    ),
) -> None:
    """Write the NATS ``authorization`` block: the services' user and one user per partner that
    may read only ``osso.referral.<its id>.>`` through its own durable consumer."""
    secrets: dict[str, str] = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    service_password = secrets.setdefault("osso", new_password())
    partners = {pid: secrets.setdefault(f"partner-{pid}", new_password()) for pid in _partner_ids(directory)}
    for path, text in (
        (secrets_file, json.dumps(secrets, indent=2)),
        (out, render_authorization(partners, service_password)),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, 0o600)
    typer.echo(f"{out}: {len(partners)} partner users; passwords in {secrets_file}")


@app.command("partner-consumers")
def partner_consumers(
    directory: DirectoryFile = Path("deploy/demo/partners.json"),
    nats_url: Annotated[str, typer.Option(envvar="OSSO_NATS_URL")] = "nats://127.0.0.1:4322",
) -> None:
    """Create each partner's durable consumer ``partner-<id>`` on OSSO_REFERRAL (idempotent)."""

    async def run() -> None:
        nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3)
        try:
            js = nc.jetstream()
            for pid in _partner_ids(directory):
                typer.echo(f"partner-{pid}: {await ensure_partner_consumer(js, pid)}")
        finally:
            await nc.close()

    asyncio.run(run())


@app.command("asyncapi")
def asyncapi(
    out: Annotated[Path, typer.Option(help="where to write the document")] = Path(
        "docs/asyncapi/referral.yaml"
    ),
) -> None:
    """Regenerate the AsyncAPI document of referral's events (checked in; a test compares)."""
    from services.referral.asyncapi import referral_asyncapi_yaml

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(referral_asyncapi_yaml())
    typer.echo(f"{out}: written")
