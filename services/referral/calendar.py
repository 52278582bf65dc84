"""Working days in Vietnam (Asia/Ho_Chi_Minh): Monday to Friday, minus public holidays. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@lru_cache(maxsize=32)
def vietnam_public_holidays(year: int) -> frozenset[date]:
    """Vietnam's public holidays of ``year`` (Tết by the lunar calendar, substituted days off),
    from the ``holidays`` package."""
    import holidays

    return frozenset(holidays.country_holidays("VN", years=year).keys())


class WorkingCalendar:
    """Counts working days in local time. ``extra_holidays`` adds days off (e.g. a provincial one);
    ``public_holidays=False`` counts weekends only."""

    def __init__(
        self, *, public_holidays: bool = True, extra_holidays: Iterable[date] = (), tz: ZoneInfo = VN_TZ
    ) -> None:
        self.public_holidays = public_holidays
        self.extra = frozenset(extra_holidays)
        self.tz = tz

    def is_working_day(self, day: date) -> bool:
        if day.weekday() >= 5 or day in self.extra:
            return False
        return not (self.public_holidays and day in vietnam_public_holidays(day.year))

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """``start`` plus ``days`` working days, at the same local clock time (an aware datetime).

        A request on Friday 10:00 with 3 working days is due on Wednesday 10:00; weekends and
        public holidays are skipped."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        local = start.astimezone(self.tz)
        day, counted = local.date(), 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return datetime.combine(day, local.timetz()).astimezone(start.tzinfo)
