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


def check_int(value: object, name: str, minimum: int = 0, maximum: int = 2**62) -> int:
    """`value` as an int within [minimum, maximum], else `ValidationError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationError(
            f"{name} must be an integer from {minimum:,} to {maximum:,}, got {value!r:.40}"
        )
    return value


def check_fraction(value: object, name: str) -> float:
    """A number in (0, 1], else `ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValidationError(f"{name} must be a number in (0, 1], got {value!r:.40}")
    return float(value)
