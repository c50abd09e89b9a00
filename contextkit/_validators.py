"""attrs validators that raise `ValidationError`, so bad settings fail like bad messages."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from contextkit.errors import ValidationError

if TYPE_CHECKING:
    from attrs import Attribute


def at_least(minimum: int) -> Any:
    """Validator: an `int` (not a bool) that is >= `minimum`."""

    def check(_: object, attribute: Any, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValidationError(
                f"{attribute.name} must be an integer >= {minimum}, got {value!r:.40}"
            )

    return check


def fraction(_: object, attribute: Any, value: object) -> None:
    """Validator: a number in (0, 1]."""
    check_fraction(value, attribute.name)


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


def check_count(value: object, name: str, *, positive: bool = False) -> int:
    """`value` if it is an int (not a bool) >= 0, or >= 1 with `positive`; else ValidationError."""
    minimum = 1 if positive else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive" if positive else "a non-negative"
        raise ValidationError(f"{name} must be {kind} integer, got {value!r:.40}")
    return value


def non_negative_int(_: object, attribute: Attribute[int], value: object) -> None:
    """Validator: an int (not a bool) >= 0, said as "a non-negative integer"."""
    check_count(value, attribute.name)


def positive_int(_: object, attribute: Attribute[int], value: object) -> None:
    """Validator: an int (not a bool) >= 1, said as "a positive integer"."""
    check_count(value, attribute.name, positive=True)


def check_non_negative_number(value: object, name: str, what: str = "number") -> float:
    """`value` (an int or float, not a bool) as a float if finite and >= 0, else ValidationError.

    `what` names the quantity in the message: "{name} must be a finite {what} >= 0".
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be a number, got {value!r:.40}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float is not finite either
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise ValidationError(f"{name} must be a finite {what} >= 0, got {value!r:.40}")
    return number


def non_negative_number(what: str = "number") -> Any:
    """Validator: a finite int or float >= 0 (see `check_non_negative_number`)."""

    def check(_: object, attribute: Any, value: object) -> None:
        check_non_negative_number(value, attribute.name, what)

    return check
