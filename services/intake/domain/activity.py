"""Community activities: outreach sessions and trainings for officials, not linked to any woman."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from services.intake.domain.case import DomainError
from shared.events import ActivityKind, ActivityRecorded, Event, Participants
from shared.vocab import ServiceCategory


@dataclass
class Activity:
    id: str
    province: str
    kind: ActivityKind
    held_on: date
    topics: list[ServiceCategory]
    participants: list[Participants]
    recorded_at: datetime
    events: list[Event] = field(default_factory=list)

    @classmethod
    def record(
        cls,
        *,
        activity_id: str,
        province: str,
        kind: ActivityKind,
        held_on: date,
        topics: list[ServiceCategory],
        participants: list[Participants],
        at: datetime,
    ) -> Activity:
        """Record a held activity; participant rows with the same sex and role are added up."""
        if held_on > at.date():
            raise DomainError("held_on: an activity is recorded after it took place")
        totals: dict[tuple[str, str], int] = {}
        for p in participants:
            totals[(p.sex, p.role)] = totals.get((p.sex, p.role), 0) + p.count
        if not any(totals.values()):
            raise DomainError("participants: at least one participant is required")
        merged = [Participants(sex=sex, role=role, count=n) for (sex, role), n in totals.items()]  # type: ignore[arg-type]
        activity = cls(activity_id, province, kind, held_on, list(dict.fromkeys(topics)), merged, at)
        activity.events.append(
            ActivityRecorded(
                activity_id=activity_id,
                province=province,
                kind=kind,
                topics=activity.topics,
                held_on=held_on,
                participants=merged,
                at=at,
            )
        )
        return activity
