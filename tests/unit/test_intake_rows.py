"""services.intake.casefile: a registration is written as plain values (no ORM object); those
values must fill every column of the cases table and load back into the same domain case."""

from __future__ import annotations

from datetime import UTC, datetime

from services.intake.casefile import row_values, to_domain
from services.intake.domain import Case, Consent
from services.intake.store import CaseRow, cases
from shared.events import NeedPriority
from shared.vocab import Channel, ServiceCategory


def test_a_new_cases_values_fill_every_column_and_load_back_as_the_same_case() -> None:
    case = Case.open(
        case_id="c-1",
        province="01",
        channel=Channel.HOTLINE,
        needs=[ServiceCategory.LEGAL, ServiceCategory.CHILDREN],
        consent=Consent(referral=True, sms=False, referral_categories=(ServiceCategory.LEGAL,)),
        has_phone=True,
        at=datetime(2026, 11, 23, 3, 0, tzinfo=UTC),
        priorities={ServiceCategory.LEGAL: NeedPriority.URGENT},
    )
    values = row_values(case, {"migration_kind": "labour"}, [{"age": 4}], "sealed")
    assert set(values) == set(cases.columns.keys()), "a column left out would be written as its default"
    back = to_domain(CaseRow(**values))
    assert (back.id, back.province, back.channel, back.needs, back.status) == (
        case.id,
        case.province,
        case.channel,
        case.needs,
        case.status,
    )
    assert back.consent == case.consent and back.priorities == case.priorities
    assert back.opened_at == case.opened_at and back.has_phone
