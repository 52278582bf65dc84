"""``osso reporting ...``: operations on the reporting projection."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

app = typer.Typer(help="Reporting projection operations.", no_args_is_help=True)


@app.command()
def rebuild(
    nats_url: Annotated[str | None, typer.Option(envvar="OSSO_NATS_URL", help="NATS server URL")] = None,
    database_url: Annotated[
        str | None, typer.Option(envvar="OSSO_REPORTING_DATABASE_URL", help="reporting database")
    ] = None,
    swap: Annotated[bool, typer.Option(help="put the rebuilt tables live (else keep them beside)")] = True,
) -> None:
    """Replay every event stream from the start into fresh tables, then swap them in."""
    from services.reporting.rebuild import rebuild as run
    from services.reporting.settings import ReportingSettings
    from shared.settings import BusSettings

    settings = ReportingSettings()
    if nats_url:
        settings.bus = BusSettings(nats_url=nats_url)
    if database_url:
        settings.database_url = database_url
    result = asyncio.run(run(settings, swap_tables=swap))
    typer.echo(
        f"replayed {result.events} events ({result.skipped} skipped, {result.late_events} during the swap) "
        f"in {result.seconds:.2f} s: {result.events_per_second:,.0f} events/s; tables {result.tables}"
        + (" now live" if result.swapped else " kept beside the live ones")
    )
