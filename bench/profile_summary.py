"""Where each profiled process spends its time: the heaviest frames of py-spy raw files.

    .venv/bin/python bench/profile_summary.py DIR [--top 25]

``DIR`` holds ``<service>.txt`` files written by ``py-spy record -f raw`` (e.g. by
``bench/platform_bench.py --profile DIR``). For each, prints the share of busy samples spent in
(inclusive) the top frames, and the top leaf frames. Samples of threads waiting on a queue or the
event loop's selector are not busy and are left out.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

IDLE = (
    "select (selectors.py",
    "_queue_SimpleQueue_get",
    "_connection_worker_thread (aiosqlite/core.py:59)",
    "Condition.wait (threading.py",
)


def summarise(path: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or any(idle in frames[-1] for idle in IDLE):
            continue
        n = int(count)
        busy += n
        leaves[frames[-1]] += n
        for frame in dict.fromkeys(frames):
            inclusive[frame] += n
    lines = [f"== {path.stem}: {busy} busy samples"]
    lines += [f"{100 * n / busy:5.1f}%  {frame[:140]}" for frame, n in inclusive.most_common(top)]
    lines.append("-- leaf frames")
    lines += [f"{100 * n / busy:5.1f}%  {frame[:140]}" for frame, n in leaves.most_common(top // 2)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    for path in sorted(args.dir.glob("*.txt")):
        print(summarise(path, args.top), end="\n\n")


if __name__ == "__main__":
    main()
