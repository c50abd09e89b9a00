"""attrs validators that raise `ValidationError`, so bad settings fail like bad messages."""

from __future__ import annotations

from typing import Any

from contextkit.errors import ValidationError


def at_least(minimum: int) -> Any:
    """Validator: an `int` (not a bool) that is >= `minimum`."""

    def check(_: object, attribute: Any, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValidationError(
                f"{attribute.name} must be an integer >= {minimum}, got {value!r:.40}"
            )

    return check


def is_bool(_: object, attribute: Any, value: object) -> None:
    """Validator: exactly True or False."""
    if not isinstance(value, bool):
        raise ValidationError(f"{attribute.name} must be True or False, got {value!r:.40}")
