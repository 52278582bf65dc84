"""``osso``: what ops need from day one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import nats
import typer

from deploy.runner import Platform, provision_streams, run_forever
from services.referral import cli as referral_cli
from services.reporting import cli as reporting_cli
from shared.auth import Role, mint_token
from shared.crypto import ensure_secret_file
from shared.deadletter import get_dead_letter, list_dead_letters, replay_dead_letter
from shared.settings import DEFAULT_PORTS, BusSettings, PlatformSettings

app = typer.Typer(help="OSSO Platform operations.", no_args_is_help=True)
dlq = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")
app.add_typer(reporting_cli.app, name="reporting")
app.add_typer(referral_cli.app, name="referral")

NatsUrl = Annotated[str | None, typer.Option(envvar="OSSO_NATS_URL", help="NATS server URL")]


def _nats_url(url: str | None) -> str:
    return url or BusSettings().nats_url


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(envvar="OSSO_DATA_DIR", help="Local state")] = Path("var"),
    nats_url: NatsUrl = None,
    intake_port: int = DEFAULT_PORTS["intake"],
    referral_port: int = DEFAULT_PORTS["referral"],
    notification_port: int = DEFAULT_PORTS["notification"],
    reporting_port: int = DEFAULT_PORTS["reporting"],
    seed_demo: bool = True,
) -> None:
    """Start NATS (embedded unless OSSO_NATS_URL is set), provision streams, run the four services."""
    ports = {
        "intake": intake_port,
        "referral": referral_port,
        "notification": notification_port,
        "reporting": reporting_port,
    }
    run_forever(Platform(data_dir=data_dir.resolve(), nats_url=nats_url, ports=ports, seed_demo=seed_demo))


@app.command()
def provision(
    nats_url: NatsUrl = None,
    replicas: Annotated[int, typer.Option(envvar="OSSO_STREAM_REPLICAS")] = 1,
    duplicate_window: Annotated[float, typer.Option(envvar="OSSO_DUPLICATE_WINDOW")] = 120.0,
    allow_fewer_replicas: Annotated[
        bool, typer.Option(help="Lower the replica count of existing streams (never done otherwise).")
    ] = False,
) -> None:
    """Declare (create or update) every JetStream stream."""
    url = _nats_url(nats_url)
    for line in asyncio.run(provision_streams(url, replicas, duplicate_window, allow_fewer_replicas)):
        typer.echo(line)


async def _with_js(url: str, fn):  # type: ignore[no-untyped-def]
    nc = await nats.connect(servers=url.split(","), connect_timeout=5, max_reconnect_attempts=3)
    try:
        return await fn(nc.jetstream())
    finally:
        await nc.close()


@dlq.command("list")
def dlq_list(nats_url: NatsUrl = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every dead letter: sequence, consumer, original subject and reason."""
    letters = asyncio.run(_with_js(_nats_url(nats_url), list_dead_letters))
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "seq": d.seq,
                        "consumer": d.consumer,
                        "subject": d.original_subject,
                        "stream": d.stream,
                        "stream_seq": d.stream_seq,
                        "deliveries": d.deliveries,
                        "reason": d.reason,
                        "at": d.at,
                    }
                    for d in letters
                ],
                indent=2,
            )
        )
        return
    if not letters:
        typer.echo("no dead letters")
    for d in letters:
        typer.echo(f"{d.seq:>6}  {d.at[:19]}  {d.consumer:<34} {d.original_subject:<40} {d.reason[:120]}")


@dlq.command("show")
def dlq_show(seq: int, nats_url: NatsUrl = None) -> None:
    """One dead letter with its headers and body."""
    letter = asyncio.run(_with_js(_nats_url(nats_url), lambda js: get_dead_letter(js, seq)))
    if letter is None:
        typer.echo(f"no dead letter with sequence {seq}", err=True)
        raise typer.Exit(1)
    typer.echo(
        json.dumps(
            {
                "seq": letter.seq,
                "consumer": letter.consumer,
                "service": letter.service,
                "subject": letter.original_subject,
                "stream": letter.stream,
                "stream_seq": letter.stream_seq,
                "deliveries": letter.deliveries,
                "reason": letter.reason,
                "at": letter.at,
                "headers": letter.original_headers(),
                "body": letter.body.decode("utf-8", "replace"),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


@dlq.command("replay")
def dlq_replay(seq: int, nats_url: NatsUrl = None) -> None:
    """Re-publish a dead letter to its original subject (consumers that applied it skip it)."""
    try:
        subject = asyncio.run(_with_js(_nats_url(nats_url), lambda js: replay_dead_letter(js, seq)))
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"replayed dead letter {seq} to {subject}")


@app.command()
def token(
    role: Annotated[Role, typer.Option(help="caseworker, supervisor, central_admin, partner, donor")],
    province: Annotated[
        str | None, typer.Option(help="two-digit post-2025 code (caseworker, supervisor)")
    ] = None,
    partner: Annotated[str | None, typer.Option(help="partner id (partner role)")] = None,
    subject: Annotated[str, typer.Option(help="who the token is for (audit logs show it)")] = "dev-user",
    hours: float = 12.0,
    data_dir: Annotated[Path, typer.Option(envvar="OSSO_DATA_DIR")] = Path("var"),
) -> None:
    """Mint a development bearer token signed with this deployment's key (OSSO_JWT_SECRET or var/keys)."""
    secret = PlatformSettings().jwt_secret or ensure_secret_file(data_dir / "keys" / "jwt-secret")
    try:
        typer.echo(
            mint_token(
                secret, subject=subject, role=role, province=province, partner_id=partner, ttl=hours * 3600
            )
        )
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def contracts(out: Annotated[Path, typer.Option(help="where to write")] = Path("docs")) -> None:
    """Write the AsyncAPI document and the event JSON Schemas (commit them with any contract change)."""
    from shared.contracts import asyncapi_document, event_schemas

    out.mkdir(parents=True, exist_ok=True)
    (out / "asyncapi.json").write_text(
        json.dumps(asyncapi_document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    )
    (out / "event-schemas.json").write_text(
        json.dumps(event_schemas(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    )
    typer.echo(f"wrote {out / 'asyncapi.json'} and {out / 'event-schemas.json'}")


def main() -> None:
    app()
