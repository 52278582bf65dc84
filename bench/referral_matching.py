"""Matching time per case with 10,000 partners in the directory (target: <= 5 ms per case).

Pure domain code (services/referral/matching.py, domain.py), no I/O: each case's needs are
matched against the WHOLE directory (no pre-filtering by the database), so this is the worst case
of what the service does. Run: .venv/bin/python bench/referral_matching.py [--partners 10000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime

from services.referral.directory import TAXONOMY
from services.referral.domain import CaseFacts, match_needs
from services.referral.matching import DirectoryIndex, NeedToMatch, PartnerService, best
from shared.events import Need
from shared.provinces import all_provinces
from shared.vocab import ServiceCategory

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def directory(n: int, rng: random.Random) -> list[PartnerService]:
    provinces = [p.code for p in all_provinces()]
    categories = list(ServiceCategory)
    services = []
    for i in range(n):
        category = rng.choice(categories)
        province = rng.choice(provinces)
        wards = frozenset(f"{rng.randrange(1, 33000):05d}" for _ in range(rng.choice((0, 0, 1, 3))))
        services.append(
            PartnerService(
                service_id=f"s{i:05d}",
                partner_id=f"p{i // 2:05d}",
                category=category,
                provinces=frozenset({province}) if not wards else frozenset(),
                wards=wards,
                taxonomy_term=rng.choice(list(TAXONOMY[category])),
                status=rng.choices(("active", "inactive", "temporarily_closed"), (90, 5, 5))[0],
                women_only=rng.random() < 0.2,
                accepts_children=rng.random() < 0.8,
                languages=frozenset({"vi", "en"}) if rng.random() < 0.3 else frozenset({"vi"}),
                capacity=rng.choice((None, 5, 20, 50)),
            )
        )
    return services


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partners", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    services = directory(args.partners, rng)
    load = {s.service_id: rng.randrange(0, 30) for s in services if rng.random() < 0.5}
    provinces = [p.code for p in all_provinces()]
    cases = [
        CaseFacts(
            case_id=f"c{i}",
            province=rng.choice(provinces),
            ward=f"{rng.randrange(1, 33000):05d}",
            consent_referral=True,
            language=rng.choice(("vi", "vi", "en")),
            with_children=rng.random() < 0.3,
        )
        for i in range(args.cases)
    ]
    needs = [
        [Need(category=c) for c in rng.sample(list(ServiceCategory), rng.choice((1, 2, 3)))] for _ in cases
    ]
    ids = iter(range(10**9))

    # Warm-up, then time each case: all its needs matched against the whole directory.
    for case, ns in zip(cases[:50], needs[:50], strict=True):
        match_needs(case, ns, services, new_id=lambda: str(next(ids)), at=NOW, load=load)
    per_case, per_need = [], []
    referred = unmatched = 0
    for case, ns in zip(cases, needs, strict=True):
        t0 = time.perf_counter()
        plan = match_needs(case, ns, services, new_id=lambda: str(next(ids)), at=NOW, load=load)
        per_case.append((time.perf_counter() - t0) * 1000)
        referred += len(plan.referrals)
        unmatched += len(plan.unmatched)
    for case in cases[:500]:
        need = NeedToMatch(ServiceCategory.LEGAL, case.province, case.ward, language=case.language)
        t0 = time.perf_counter()
        best(services, need, load)
        per_need.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    index = DirectoryIndex(services)
    build_ms = (time.perf_counter() - t0) * 1000
    per_case_indexed = []
    for case, ns in zip(cases, needs, strict=True):
        t0 = time.perf_counter()
        pool = [s for n in ns for s in index.candidates(NeedToMatch(n.category, case.province, case.ward))]
        match_needs(case, ns, pool, new_id=lambda: str(next(ids)), at=NOW, load=load)
        per_case_indexed.append((time.perf_counter() - t0) * 1000)

    print(f"directory: {len(services)} partner services, {len(cases)} cases ({sum(map(len, needs))} needs)")
    print(f"referred {referred} needs, no partner available for {unmatched}")
    print(
        f"per case, full scan:      median {statistics.median(per_case):.3f} ms, "
        f"p95 {percentile(per_case, 0.95):.3f} ms, max {max(per_case):.3f} ms  (target <= 5 ms)"
    )
    print(
        f"per case, area index:     median {statistics.median(per_case_indexed):.3f} ms, "
        f"p95 {percentile(per_case_indexed, 0.95):.3f} ms  (index built once in {build_ms:.1f} ms)"
    )
    print(
        f"per need (one best()):   median {statistics.median(per_need):.3f} ms, p95 {percentile(per_need, 0.95):.3f} ms"
    )


if __name__ == "__main__":
    main()
