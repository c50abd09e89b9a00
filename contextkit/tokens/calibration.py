"""Calibration: the gap between predicted and reported prompt tokens, per prompt structure.

`prompt_structure` names the template features a prompt uses; two prompts with the same key
differ from the provider's count in the same way, so `Calibration` remembers one gap per key.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from attrs import field, frozen

from contextkit.errors import ValidationError
from contextkit.tokens.chat import MessageShape, reasoning_effort_level

__all__ = ["Calibration", "prompt_structure"]


def prompt_structure(
    shapes: Sequence[MessageShape],
    *,
    tools: bool = False,
    thinking: bool = True,
    reasoning_effort: str | None = None,
) -> str:
    """A short key naming the template features a prompt uses, for `Calibration`.

    Two prompts with the same key differ from the provider's count in the same way, if at
    all: the key lists the mode, the effort and each kind of seam in the rendering.
    """
    roles = [s.role for s in shapes]
    features = ["think" if thinking else "chat"]
    if tools:
        features.append("tools")
    level = reasoning_effort_level(reasoning_effort)
    if thinking and level is not None:
        features.append(level)  # the GA encoder's preambles differ by level
    pairs = set(itertools.pairwise(roles))
    if {("user", "user"), ("tool", "user"), ("developer", "user")} & pairs:
        features.append("user-after-user")
    if "system" in roles[1:]:
        features.append("late-system")
    if ("system", "assistant") in pairs:
        features.append("system-assistant")
    if "tool" in roles:
        features.append("tool-results")
    return "+".join(features)


def _deltas(value: object) -> tuple[tuple[str, int], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    if not isinstance(items, Sequence) and not hasattr(items, "__iter__"):
        raise ValidationError(f"deltas must be a mapping, got {type(value).__name__}")
    out = []
    for key, delta in items:
        if not isinstance(key, str) or not isinstance(delta, int) or isinstance(delta, bool):
            raise ValidationError(f"calibration entries must be str -> int, got {key!r}: {delta!r}")
        out.append((key, delta))
    return tuple(sorted(out))


@frozen
class Calibration:
    """What the provider reported minus what we predicted, last seen per prompt structure.

    A pure value: `observe` returns a new `Calibration`; `adjust` adds the last gap seen for
    the same structure (see `prompt_structure`), or nothing for a structure never seen. A
    store keeps one row per (model, structure) and reads them back as a `Calibration`
    (`Store.calibration(model)`); `build()` budgets with `max(correction, 0)`.
    """

    deltas: tuple[tuple[str, int], ...] = field(default=(), converter=_deltas)
    observations: int = 0

    @staticmethod
    def gap(predicted: int, reported: int) -> int:
        """The rule: a structure's correction is the last reported-minus-predicted gap."""
        for what, value in (("predicted", predicted), ("reported", reported)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError(f"{what} must be a non-negative integer, got {value!r:.40}")
        return reported - predicted

    @staticmethod
    def headroom(correction: int) -> int:
        """What a budget adds for a correction: the provider counting more, never less."""
        return max(correction, 0)

    def observe(self, structure: str, predicted: int, reported: int) -> Calibration:
        """This calibration updated with one request's predicted and reported prompt tokens."""
        deltas = dict(self.deltas)
        deltas[structure] = self.gap(predicted, reported)
        return Calibration(deltas, self.observations + 1)

    def correction(self, structure: str) -> int:
        """Tokens to add to a prediction for a prompt of this structure."""
        return dict(self.deltas).get(structure, 0)

    def adjust(self, predicted: int, structure: str) -> int:
        """`predicted` corrected by the last gap seen for `structure`."""
        return predicted + self.correction(structure)

    def as_dict(self) -> dict[str, int]:
        """The deltas as a plain dict, for storage; `Calibration(d, n)` reads it back."""
        return dict(self.deltas)
