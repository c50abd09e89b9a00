"""Part 1, append: messages/s into a fresh SQLite file, next to raw inserts (the ceiling)."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import print_table, timed

from contextkit.testing.sharegpt import messages as sharegpt_messages

from . import agents_sdk, contextkit_side, langchain, llamaindex, raw
from .common import SQLITE_SETTINGS, Target


def _targets(tmp: Path) -> list[Target]:
    return [
        raw.append_target(tmp),
        contextkit_side.append_target(tmp),
        langchain.append_target(tmp),
        llamaindex.append_target(tmp),
        agents_sdk.append_target(tmp, "sqlite"),
        agents_sdk.append_target(tmp, "sqlalchemy"),
    ]


def part_append(quick: bool) -> dict[str, Any]:
    """Messages/s per target, one message per call and 100 per call (median of rounds)."""
    rounds = 3 if quick else 5
    modes = {1: 100 if quick else 300, 100: 500 if quick else 1_000}
    texts = sharegpt_messages(rounds * max(modes.values()))
    msgs = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]
    out: dict[str, Any] = {"rounds": rounds, "modes": {}, "sqlite_settings": {}}
    settings: dict[str, tuple[str, int]] = {}
    for batch, per_round in modes.items():
        with tempfile.TemporaryDirectory(prefix="ck-bench-append-") as tmp:
            targets = _targets(Path(tmp))
            seconds: dict[str, list[float]] = {t.name: [] for t in targets}
            try:
                for r in range(rounds):
                    chunk = msgs[r * per_round : (r + 1) * per_round]
                    shift = r % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        items = target.load(chunk)
                        elapsed, _ = timed(lambda t=target, i=items, b=batch: t.append(i, b))
                        seconds[target.name].append(elapsed)
                for target in targets:  # what each library's own connection runs with
                    settings[target.name] = target.settings()
            finally:
                for target in targets:
                    target.close()
        ceiling = statistics.median(seconds[targets[0].name])
        rows = {}
        for name, series in seconds.items():
            med = statistics.median(series)
            rows[name] = {
                "messages_per_s": per_round / med,
                "us_per_message": med / per_round * 1e6,
                "rates_per_round": [per_round / s for s in series],
                "share_of_ceiling": ceiling / med,
            }
        out["modes"][str(batch)] = {"messages_per_round": per_round, "targets": rows}
        print_table(
            ["target", "messages/s", "us/message", "of ceiling"],
            [
                [n, r["messages_per_s"], r["us_per_message"], f"{r['share_of_ceiling']:.1%}"]
                for n, r in rows.items()
            ],
            title=f"1. append, {batch} message(s) per call ({rounds} rounds of {per_round})",
        )
    out["sqlite_settings"] = {
        name: {"journal_mode": mode, "synchronous": sync} for name, (mode, sync) in settings.items()
    }
    out["violations"] = {
        "sqlite_settings_differ": sum(value != SQLITE_SETTINGS for value in settings.values())
    }
    return out
