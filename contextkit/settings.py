"""Thread settings checked at the boundary: owner, model, system prompt, budget, metadata.

Pure validation shared by `Store.thread()`, `Thread.update()` and import, so a bad setting
fails the same way wherever it comes from, before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from contextkit.errors import ValidationError
from contextkit.models import get_model
from contextkit.types import canonical_json, check_text

__all__ = ["MAX_METADATA", "check_metadata", "check_owner", "thread_settings"]

MAX_METADATA = 64 * 1024
"""Largest metadata, in bytes of canonical JSON."""


def check_owner(owner: object) -> str:
    """An owner id: a string of at most 255 characters that a database stores faithfully."""
    if not isinstance(owner, str):
        raise ValidationError(f"owner must be a string, got {type(owner).__name__}")
    if len(owner) > 255:
        raise ValidationError(f"owner is {len(owner)} characters long; the limit is 255")
    return check_text(owner, "owner")


def check_metadata(metadata: object) -> dict[str, Any]:
    """Metadata as the JSON round trip stores it (a mapping of at most `MAX_METADATA` bytes)."""
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        text = canonical_json(dict(metadata))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"metadata must be JSON-serializable: {exc}") from None
    check_text(text, "metadata")
    if len(text.encode()) > MAX_METADATA:
        raise ValidationError(f"metadata is larger than {MAX_METADATA} bytes as JSON")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def thread_settings(
    *,
    model: object = None,
    system: object = None,
    max_context_tokens: object = None,
    metadata: object = None,
) -> dict[str, Any]:
    """Validated thread settings, keyed by column; None means 'not given'."""
    values: dict[str, Any] = {}
    spec = None
    if model is not None:
        if not isinstance(model, str):
            raise ValidationError(f"model must be a string, got {type(model).__name__}")
        spec = get_model(model)
        values["model"] = model
    if system is not None:
        if not isinstance(system, str):
            raise ValidationError(f"system must be a string, got {type(system).__name__}")
        values["system"] = check_text(system, "system")
    if max_context_tokens is not None:
        if isinstance(max_context_tokens, bool) or not isinstance(max_context_tokens, int):
            raise ValidationError(
                f"max_context_tokens must be an int, got {type(max_context_tokens).__name__}"
            )
        window = spec.context_window if spec is not None else None
        if max_context_tokens < 1 or (window is not None and max_context_tokens > window):
            raise ValidationError(
                f"max_context_tokens must be between 1 and the model's window "
                f"({window if window is not None else 'see contextkit.get_model'}), "
                f"got {max_context_tokens}"
            )
        values["max_context_tokens"] = max_context_tokens
    if metadata is not None:
        values["metadata"] = check_metadata(metadata)
    return values
