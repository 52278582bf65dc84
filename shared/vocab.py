"""Controlled vocabularies shared by every service (values are stable API and event strings)."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """How a woman reached the office (DOMAIN.md, contact channels)."""

    WALK_IN = "walk_in"
    HOTLINE = "hotline"  # free hotline 1800 599967
    ONLINE = "online"  # Zalo, Facebook
    OUTREACH = "outreach"  # community sessions
    HANDOVER = "handover"  # police, border guards, social affairs


class ServiceCategory(StrEnum):
    """The six OSSO service categories (DOMAIN.md, "What an office does for a woman")."""

    LEGAL = "legal"
    HEALTH_EDUCATION = "health_education"  # health, education, training, vocational training
    PSYCHOLOGICAL = "psychological"  # counselling, GBV skills, family life
    LIVELIHOOD = "livelihood"  # labour, jobs, loans, starting a business
    UNION = "union"  # joining Women's Union activities
    CHILDREN = "children"  # care for the children who came back with her
