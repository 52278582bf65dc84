"""The closed loop of a referral (FHIR Task states): every allowed and every refused transition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.referral.loop import (
    PARTNER_ACTIONS,
    STAFF_ACTIONS,
    TRANSITIONS,
    Action,
    IllegalTransition,
    MissingCode,
    Referral,
    ReferralStatus,
    allowed_actions,
)
from shared.events import (
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralFailed,
    ReferralOnHold,
    ReferralOverdue,
    ReferralRejected,
    ReferralRequested,
    ReferralResumed,
    ReferralStarted,
)
from shared.vocab import ServiceCategory

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
S, A = ReferralStatus, Action
EVENT_OF = {
    A.ACCEPT: ReferralAccepted,
    A.REJECT: ReferralRejected,
    A.START: ReferralStarted,
    A.HOLD: ReferralOnHold,
    A.RESUME: ReferralResumed,
    A.COMPLETE: ReferralCompleted,
    A.FAIL: ReferralFailed,
    A.CANCEL: ReferralCancelled,
}
CODES = {"reason": "no_capacity", "outcome": "legal_aid_given"}


def referral(status: ReferralStatus = S.REQUESTED, held_from: ReferralStatus | None = None) -> Referral:
    r = Referral.request(
        referral_id="r1",
        case_id="c1",
        partner_id="hn-legal-aid",
        province="01",
        category=ServiceCategory.LEGAL,
        at=NOW,
        accept_by=NOW + timedelta(days=3),
    )
    r.events.clear()
    r.status = status
    r.held_from = held_from if status is S.ON_HOLD else None
    return r


ALL = [(s, a) for s in S for a in A]
ALLOWED = [(s, a) for s, a in ALL if a in TRANSITIONS[s]]
REFUSED = [(s, a) for s, a in ALL if a not in TRANSITIONS[s]]


def test_the_table_is_the_fhir_task_loop() -> None:
    assert allowed_actions(S.REQUESTED) == [A.ACCEPT, A.REJECT, A.HOLD, A.CANCEL]
    assert allowed_actions(S.ACCEPTED) == [A.START, A.HOLD, A.FAIL, A.CANCEL]
    assert allowed_actions(S.IN_PROGRESS) == [A.HOLD, A.COMPLETE, A.FAIL, A.CANCEL]
    assert allowed_actions(S.ON_HOLD) == [A.RESUME, A.FAIL, A.CANCEL]
    for closed in (S.REJECTED, S.COMPLETED, S.FAILED, S.CANCELLED):
        assert allowed_actions(closed) == []
    assert len(ALLOWED) == 15 and len(REFUSED) == len(S) * len(A) - 15


@pytest.mark.parametrize(("status", "action"), ALLOWED, ids=[f"{s}-{a}" for s, a in ALLOWED])
def test_allowed_transition(status: ReferralStatus, action: Action) -> None:
    r = referral(status, held_from=S.IN_PROGRESS)
    event = r.act(action, at=NOW, by_role="partner", **CODES)
    expected = TRANSITIONS[status][action] or S.IN_PROGRESS  # resume: back where it was held
    assert r.status is expected
    assert isinstance(event, EVENT_OF[action]) and r.events == [event]
    assert event.subject() == f"osso.referral.hn-legal-aid.{event.NAME}"
    assert event.ce_subject() == "r1" and event.at == NOW


@pytest.mark.parametrize(("status", "action"), REFUSED, ids=[f"{s}-{a}" for s, a in REFUSED])
def test_refused_transition_lists_the_allowed_ones(status: ReferralStatus, action: Action) -> None:
    r = referral(status, held_from=S.ACCEPTED)
    with pytest.raises(IllegalTransition) as info:
        r.act(action, at=NOW, by_role="partner", **CODES)
    assert info.value.allowed == allowed_actions(status)
    assert r.status is status and r.events == []
    assert f"cannot {action.value}" in str(info.value)


@pytest.mark.parametrize("action", [A.REJECT, A.FAIL, A.CANCEL, A.COMPLETE])
def test_reason_or_outcome_is_required_and_is_a_code(action: Action) -> None:
    start = {A.REJECT: S.REQUESTED, A.FAIL: S.ACCEPTED, A.CANCEL: S.REQUESTED, A.COMPLETE: S.IN_PROGRESS}
    r = referral(start[action])
    with pytest.raises(MissingCode):
        r.act(action, at=NOW, by_role="partner")
    field = "outcome" if action is A.COMPLETE else "reason"
    with pytest.raises(MissingCode, match="code"):
        r.act(action, at=NOW, by_role="partner", **{field: "She said her husband is back"})
    assert r.status is start[action]


def test_resume_returns_to_the_state_it_was_held_from() -> None:
    r = referral(S.ACCEPTED)
    r.act(A.HOLD, at=NOW, by_role="partner", reason="waiting_papers")
    assert r.status is S.ON_HOLD and r.held_from is S.ACCEPTED
    r.act(A.RESUME, at=NOW, by_role="partner")
    assert r.status is S.ACCEPTED and r.held_from is None


def test_full_happy_path_records_every_step() -> None:
    r = referral()
    r.act(A.ACCEPT, at=NOW, by_role="partner", complete_by=NOW + timedelta(days=20))
    r.act(A.START, at=NOW, by_role="partner")
    r.act(A.COMPLETE, at=NOW, by_role="partner", outcome="legal_aid_given")
    assert [type(e) for e in r.events] == [ReferralAccepted, ReferralStarted, ReferralCompleted]
    assert r.complete_by == NOW + timedelta(days=20) and r.outcome == "legal_aid_given"
    assert not r.is_open


def test_cancel_leaves_a_closed_referral_alone() -> None:
    r = referral(S.COMPLETED)
    assert r.cancel(reason="consent_withdrawn", at=NOW, by_role="system") is None
    open_one = referral(S.IN_PROGRESS)
    event = open_one.cancel(reason="consent_withdrawn", at=NOW, by_role="system")
    assert isinstance(event, ReferralCancelled) and event.reason == "consent_withdrawn"


def test_roles_partner_works_the_referral_staff_cancels() -> None:
    assert A.CANCEL not in PARTNER_ACTIONS and A.CANCEL in STAFF_ACTIONS
    assert A.ACCEPT not in STAFF_ACTIONS and A.COMPLETE not in STAFF_ACTIONS


def test_overdue_once_per_stage() -> None:
    r = referral()
    assert r.check_overdue(NOW + timedelta(days=2)) is None
    late = r.check_overdue(NOW + timedelta(days=3))
    assert isinstance(late, ReferralOverdue) and late.stage == "acceptance" and late.by_role == "system"
    assert r.check_overdue(NOW + timedelta(days=4)) is None  # flagged once
    r.act(A.ACCEPT, at=NOW, by_role="partner", complete_by=NOW + timedelta(days=10))
    assert r.check_overdue(NOW + timedelta(days=9)) is None
    again = r.check_overdue(NOW + timedelta(days=10))
    assert isinstance(again, ReferralOverdue) and again.stage == "completion"
    assert r.check_overdue(NOW + timedelta(days=11)) is None


def test_request_event_carries_the_deadline_and_no_identifying_data() -> None:
    r = Referral.request(
        referral_id="r9", case_id="c9", partner_id="p", province="31", category=ServiceCategory.LEGAL, at=NOW
    )
    [event] = r.events
    assert isinstance(event, ReferralRequested) and event.subject() == "osso.referral.p.requested"
    assert set(event.model_dump()) <= {
        "referral_id", "case_id", "partner_id", "province", "category", "requested_at", "taxonomy_term",
        "priority", "accept_by", "manual", "rerouted_from",
    }  # fmt: skip
