"""Kept for one release: import `to_anthropic` from `contextkit.formats.anthropic`."""

from contextkit.formats.anthropic import to_anthropic

__all__ = ["to_anthropic"]
