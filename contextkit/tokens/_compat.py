"""The model-resolving functions `contextkit.tokens` still offers, from `contextkit.counting`.

They resolve model ids through the registry (`contextkit.models`), which imports this
package, so they are looked up on first access (a PEP 562 module `__getattr__`) instead of
imported: importing `contextkit.tokens` never imports the registry. This is the one place
below `contextkit.models` that reaches `contextkit.counting`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["from_counting"]


def from_counting(namespace: dict[str, Any], name: str) -> object:
    """`contextkit.counting.<name>` for a module listing `name` in `__all__`; cached there."""
    if name not in namespace.get("__all__", ()):
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
    import contextkit.counting as counting

    value = getattr(counting, name)
    namespace[name] = value
    return value
