"""Event contracts: the checked-in AsyncAPI document and schemas match the code, no change
breaks a consumer, and no event can carry identifying data."""

from __future__ import annotations

import json
from pathlib import Path

from shared.contracts import asyncapi_document, breaking_changes, event_schemas, subject_pattern
from shared.events import ALL_EVENTS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_published_events_stay_compatible_with_the_checked_in_contract() -> None:
    committed = json.loads((DOCS / "event-schemas.json").read_text())
    assert breaking_changes(committed, event_schemas()) == []


def test_checked_in_documents_are_up_to_date() -> None:
    # A compatible change still needs `make contracts` so partners read the current contract.
    assert json.loads((DOCS / "event-schemas.json").read_text()) == json.loads(json.dumps(event_schemas()))
    assert json.loads((DOCS / "asyncapi.json").read_text()) == asyncapi_document()


def test_breaking_changes_are_detected() -> None:
    old = {
        "t.v1": {
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
            "required": ["a"],
        }
    }
    assert breaking_changes(old, old) == []
    added_optional = {
        "t.v1": {"properties": {**old["t.v1"]["properties"], "c": {"type": "string"}}, "required": ["a"]}
    }
    assert breaking_changes(old, added_optional) == []
    removed = {"t.v1": {"properties": {"a": {"type": "string"}}, "required": ["a"]}}
    assert breaking_changes(old, removed) == ["t.v1: field 'b' removed"]
    retyped = {"t.v1": {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a"]}}
    assert breaking_changes(old, retyped) == ["t.v1: field 'b' changed its schema"]
    new_required = {
        "t.v1": {"properties": {**old["t.v1"]["properties"], "c": {"type": "string"}}, "required": ["a", "c"]}
    }
    assert breaking_changes(old, new_required) == [
        "t.v1: new field 'c' is required (new fields must be optional)"
    ]
    assert breaking_changes(old, {}) == ["t.v1: event type removed"]


def test_every_event_has_a_channel_and_a_message_in_asyncapi() -> None:
    doc = asyncapi_document()
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {subject_pattern(cls) for cls in ALL_EVENTS}
    assert len(doc["components"]["messages"]) == len(ALL_EVENTS)


IDENTIFYING = ("name", "phone", "cccd", "national_id", "address", "email", "birth", "note", "text", "zalo_id")


def test_no_event_field_can_carry_identifying_data() -> None:
    for cls in ALL_EVENTS:
        schema = cls.model_json_schema()
        fields = set(schema.get("properties", {}))
        for definition in schema.get("$defs", {}).values():
            fields |= set(definition.get("properties", {}))
        leaks = {f for f in fields if any(word in f.lower() for word in IDENTIFYING)}
        assert not leaks, f"{cls.TYPE} has fields that could identify her: {leaks}"
        assert schema.get("additionalProperties") is False, f"{cls.TYPE} must forbid extra fields"
