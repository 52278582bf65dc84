"""The closed loop of one referral, aligned with the FHIR ``Task`` state machine. Pure: no I/O.

``requested -> accepted | rejected(reason) -> in_progress -> completed(outcome) | failed(reason)``;
``cancelled(reason)`` from any open state; ``on_hold`` and back (``resume``) to where it was held.
Every step records its event on the referral, on the partner's own subject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from shared.events import (
    CODE_PATTERN,
    Event,
    NeedPriority,
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralFailed,
    ReferralNoteAdded,
    ReferralOnHold,
    ReferralOverdue,
    ReferralRejected,
    ReferralRequested,
    ReferralResumed,
    ReferralStarted,
)
from shared.vocab import ServiceCategory


class ReferralStatus(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Action(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    START = "start"
    HOLD = "hold"
    RESUME = "resume"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"


S, A = ReferralStatus, Action
OPEN_STATES = frozenset({S.REQUESTED, S.ACCEPTED, S.IN_PROGRESS, S.ON_HOLD})
TERMINAL_STATES = frozenset(set(S) - OPEN_STATES)

#: state -> action -> next state (``None`` for resume: back to the state it was held from).
TRANSITIONS: dict[ReferralStatus, dict[Action, ReferralStatus | None]] = {
    S.REQUESTED: {A.ACCEPT: S.ACCEPTED, A.REJECT: S.REJECTED, A.HOLD: S.ON_HOLD, A.CANCEL: S.CANCELLED},
    S.ACCEPTED: {A.START: S.IN_PROGRESS, A.HOLD: S.ON_HOLD, A.FAIL: S.FAILED, A.CANCEL: S.CANCELLED},
    S.IN_PROGRESS: {A.COMPLETE: S.COMPLETED, A.FAIL: S.FAILED, A.HOLD: S.ON_HOLD, A.CANCEL: S.CANCELLED},
    S.ON_HOLD: {A.RESUME: None, A.FAIL: S.FAILED, A.CANCEL: S.CANCELLED},
    S.REJECTED: {},
    S.COMPLETED: {},
    S.FAILED: {},
    S.CANCELLED: {},
}

#: Who may take each action: the partner works the referral; the caseworker's side cancels and holds.
PARTNER_ACTIONS = frozenset({A.ACCEPT, A.REJECT, A.START, A.HOLD, A.RESUME, A.COMPLETE, A.FAIL})
STAFF_ACTIONS = frozenset({A.CANCEL, A.HOLD, A.RESUME})
#: Actions whose event needs a reason code (``complete`` needs an outcome code instead).
NEEDS_REASON = frozenset({A.REJECT, A.FAIL, A.CANCEL})

_CODE = re.compile(CODE_PATTERN)


class LoopError(ValueError):
    """A referral cannot do what was asked; the message says why."""


class IllegalTransition(LoopError):
    def __init__(self, status: ReferralStatus, action: Action) -> None:
        self.status = status
        self.action = action
        self.allowed = allowed_actions(status)
        allowed = ", ".join(a.value for a in self.allowed) or "none (the referral is closed)"
        super().__init__(f"cannot {action.value} a referral that is {status.value}; allowed: {allowed}")


class MissingCode(LoopError):
    """A reason or outcome code is required, or is not a code."""


def allowed_actions(status: ReferralStatus, role_actions: frozenset[Action] | None = None) -> list[Action]:
    """The actions allowed from ``status`` (optionally only those of one role), in a stable order."""
    return [a for a in Action if a in TRANSITIONS[status] and (role_actions is None or a in role_actions)]


def _code(value: str | None, what: str, action: Action) -> str:
    if not value:
        raise MissingCode(f"{what}: a {what} code is required to {action.value} a referral")
    if not _CODE.fullmatch(value):
        raise MissingCode(f"{what}: must be a short code (a-z, 0-9, _), not free text")
    return value


@dataclass
class Referral:
    """One need of one case, sent to one partner (organisation), optionally one of its services."""

    id: str
    case_id: str
    partner_id: str
    province: str
    category: ServiceCategory
    requested_at: datetime
    status: ReferralStatus = S.REQUESTED
    service_id: str | None = None
    taxonomy_term: str | None = None
    priority: NeedPriority = NeedPriority.NORMAL
    accept_by: datetime | None = None
    complete_by: datetime | None = None
    held_from: ReferralStatus | None = None
    overdue_acceptance: bool = False
    overdue_completion: bool = False
    manual: bool = False
    rerouted_from: str | None = None
    reason: str | None = None
    outcome: str | None = None
    updated_at: datetime | None = None
    events: list[Event] = field(default_factory=list)

    @classmethod
    def request(
        cls,
        *,
        referral_id: str,
        case_id: str,
        partner_id: str,
        province: str,
        category: ServiceCategory,
        at: datetime,
        service_id: str | None = None,
        taxonomy_term: str | None = None,
        priority: NeedPriority = NeedPriority.NORMAL,
        accept_by: datetime | None = None,
        manual: bool = False,
        rerouted_from: str | None = None,
    ) -> Referral:
        r = cls(
            referral_id,
            case_id,
            partner_id,
            province,
            category,
            at,
            service_id=service_id,
            taxonomy_term=taxonomy_term,
            priority=priority,
            accept_by=accept_by,
            manual=manual,
            rerouted_from=rerouted_from,
            updated_at=at,
        )
        r.events.append(
            ReferralRequested(
                **r._keys(),
                requested_at=at,
                taxonomy_term=taxonomy_term,
                priority=priority,
                accept_by=accept_by,
                manual=manual,
                rerouted_from=rerouted_from,
            )
        )
        return r

    def _keys(self) -> dict[str, str]:
        return {
            "referral_id": self.id,
            "case_id": self.case_id,
            "partner_id": self.partner_id,
            "province": self.province,
            "category": self.category,
        }

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    def allowed(self, role_actions: frozenset[Action] | None = None) -> list[Action]:
        return allowed_actions(self.status, role_actions)

    def act(
        self,
        action: Action,
        *,
        at: datetime,
        by_role: str,
        reason: str | None = None,
        outcome: str | None = None,
        complete_by: datetime | None = None,
    ) -> Event:
        """Take ``action``; raises :class:`IllegalTransition` or :class:`MissingCode`, else records
        and returns the event. ``complete_by`` is the completion deadline set on acceptance."""
        if action not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.status, action)
        if action in NEEDS_REASON:
            reason = _code(reason, "reason", action)
        elif reason is not None and action is A.HOLD:
            reason = _code(reason, "reason", action)
        if action is A.COMPLETE:
            outcome = _code(outcome, "outcome", action)
        target = TRANSITIONS[self.status][action]
        if target is None:  # resume
            target = self.held_from or S.REQUESTED
        keys = {**self._keys(), "at": at, "by_role": by_role}
        event: Event
        match action:
            case A.ACCEPT:
                self.complete_by = complete_by
                event = ReferralAccepted(**keys, complete_by=complete_by)
            case A.REJECT:
                event = ReferralRejected(**keys, reason=reason)
            case A.START:
                event = ReferralStarted(**keys)
            case A.HOLD:
                self.held_from = self.status
                event = ReferralOnHold(**keys, reason=reason)
            case A.RESUME:
                self.held_from = None
                event = ReferralResumed(**keys)
            case A.COMPLETE:
                self.outcome = outcome
                event = ReferralCompleted(**keys, outcome=outcome)
            case A.FAIL:
                event = ReferralFailed(**keys, reason=reason)
            case A.CANCEL:
                event = ReferralCancelled(**keys, reason=reason)
        if reason is not None and action is not A.HOLD:
            self.reason = reason
        self.status = target
        self.updated_at = at
        self.events.append(event)
        return event

    def cancel(self, *, reason: str, at: datetime, by_role: str) -> Event | None:
        """Cancel if still open (consent withdrawn, case closed...); a closed referral is left alone."""
        if not self.is_open:
            return None
        return self.act(A.CANCEL, at=at, by_role=by_role, reason=reason)

    def add_note(self, *, at: datetime, by_role: str) -> Event:
        """A progress note was added (the text stays in the service); allowed while open."""
        if not self.is_open:
            raise LoopError(f"cannot add a note to a referral that is {self.status.value}")
        self.updated_at = at
        event = ReferralNoteAdded(**self._keys(), at=at, by_role=by_role)
        self.events.append(event)
        return event

    def check_overdue(self, now: datetime) -> ReferralOverdue | None:
        """Mark overdue once per stage: not accepted by ``accept_by``, or not completed by
        ``complete_by``; returns the event, or None when nothing is late (or already flagged)."""
        stage: str | None = None
        if self.status is S.REQUESTED and self.accept_by and now >= self.accept_by:
            if not self.overdue_acceptance:
                self.overdue_acceptance = True
                stage = "acceptance"
        elif self.status in (S.ACCEPTED, S.IN_PROGRESS) and self.complete_by and now >= self.complete_by:
            if not self.overdue_completion:
                self.overdue_completion = True
                stage = "completion"
        if stage is None:
            return None
        event = ReferralOverdue(**self._keys(), at=now, stage=stage)  # type: ignore[arg-type]
        self.updated_at = now
        self.events.append(event)
        return event
