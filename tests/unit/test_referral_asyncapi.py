"""The AsyncAPI document of referral's events is generated from the contracts (FastStream) and the
checked-in copy is current: a change to a published event's schema shows up here and in review."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.referral.asyncapi import PARTNER_EVENTS, referral_asyncapi_yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi" / "referral.yaml"


def test_checked_in_document_is_current() -> None:
    assert DOC.read_text() == referral_asyncapi_yaml(), (
        "docs/asyncapi/referral.yaml is stale: run `.venv/bin/osso referral asyncapi` and review the diff"
    )


def test_every_partner_event_is_documented_on_its_subject() -> None:
    doc = yaml.safe_load(DOC.read_text())
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    for event in PARTNER_EVENTS:
        assert f"osso.referral.{{partner_id}}.{event.NAME}" in addresses
        [schema] = [v for k, v in doc["components"]["schemas"].items() if k.startswith(event.__name__)]
        assert set(event.model_fields) <= set(schema["properties"])
    # No schema has a field that could identify her.
    fields = {f for schema in doc["components"]["schemas"].values() for f in schema.get("properties", {})}
    assert not fields & {"phone", "name", "first_name", "cccd", "national_id", "address", "note", "text"}
