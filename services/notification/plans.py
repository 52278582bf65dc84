"""Follow-up plans: a versioned TOML file that says which event schedules which message, when.

Read once at start; anything wrong (unknown key, unknown trigger or template, bad duration,
unsupported version) raises :class:`PlanError` naming the key, and the service does not start.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SUPPORTED_VERSIONS = (1,)

#: Events that may schedule a follow-up (``<aggregate>.<event>``).
TRIGGERS = frozenset(
    {"case.opened", "referral.requested", "referral.accepted", "referral.in_progress", "referral.completed"}
)
#: Referral events that may cancel that referral's pending messages.
REFERRAL_CANCELLERS = frozenset(
    {
        "referral.rejected",
        "referral.cancelled",
        "referral.failed",
        "referral.completed",
        "referral.overdue",
        "referral.on_hold",
    }
)

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class PlanError(ValueError):
    """The plan file is invalid; the message names the file and the key."""


def parse_duration(text: str) -> timedelta:
    """``"2d"`` -> 2 days; units s, m, h, d."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like '30m', '36h' or '2d'")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FollowUpRule(_Strict):
    """One follow-up: on ``on``, schedule ``template`` ``after`` later (or ``before_appointment``)."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    on: str
    template: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    after: timedelta = timedelta(0)
    #: Only for ``referral.accepted``: due this long before her appointment when one is known.
    before_appointment: timedelta | None = None
    #: Switch a rule off without deleting it.
    enabled: bool = True

    @field_validator("on")
    @classmethod
    def _known_trigger(cls, v: str) -> str:
        if v not in TRIGGERS:
            raise ValueError(f"unknown trigger {v!r}; one of {', '.join(sorted(TRIGGERS))}")
        return v

    @field_validator("after", "before_appointment", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _appointment_only_on_accept(self) -> FollowUpRule:
        if self.before_appointment is not None and self.on != "referral.accepted":
            raise ValueError("before_appointment is only meaningful for on = 'referral.accepted'")
        return self


class CancelRules(_Strict):
    referral: list[str] = Field(default_factory=list)

    @field_validator("referral")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in REFERRAL_CANCELLERS:
                raise ValueError(f"unknown event {name!r}; one of {', '.join(sorted(REFERRAL_CANCELLERS))}")
        return v


class Plans(_Strict):
    version: int
    follow_up: list[FollowUpRule] = Field(default_factory=list)
    cancel: CancelRules = Field(default_factory=CancelRules)

    @field_validator("version")
    @classmethod
    def _supported(cls, v: int) -> int:
        if v not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported plan version {v}; supported: {SUPPORTED_VERSIONS}")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> Plans:
        names = [r.name for r in self.follow_up]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"follow_up names must be unique: {', '.join(dupes)}")
        return self

    def rules_for(self, trigger: str) -> list[FollowUpRule]:
        return [r for r in self.follow_up if r.enabled and r.on == trigger]


def _key(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_plans(text: str, *, source: str = "plans", templates: set[str] | None = None) -> Plans:
    """Parse and validate plan TOML; ``templates`` (if given) are the template names that exist."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{source}: not valid TOML: {exc}") from None
    try:
        plans = Plans.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            problems.append(f"{_key(e['loc'])}: {msg}")
        raise PlanError(f"{source}: " + "; ".join(problems)) from None
    if templates is not None:
        for i, rule in enumerate(plans.follow_up):
            if rule.template not in templates:
                raise PlanError(
                    f"{source}: follow_up[{i}].template: unknown template {rule.template!r}; "
                    f"known: {', '.join(sorted(templates))}"
                )
    return plans


def load_plans(path: Path, *, templates: set[str] | None = None) -> Plans:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the plan file ({exc.strerror})") from None
    return parse_plans(text, source=str(path), templates=templates)
