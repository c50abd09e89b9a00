"""The model registry: what contextkit knows about each model it budgets for.

A `ModelSpec` says how big the window is, what tokens cost, how the prompt is tokenized and
templated, whether thinking is on by default and where reasoning must be replayed. DeepSeek
V4 Flash and Pro are built in; `register_model` adds any other OpenAI-compatible model.

The retired ids `deepseek-chat` and `deepseek-reasoner` resolve, with a DeprecationWarning,
to a copy of `deepseek-v4-flash` whose `thinking_default` is off / on (they were its two
modes). The copy still sends `api_model="deepseek-v4-flash"`: a retired id never reaches
the API. `aliased_from` records the id that was asked for.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable
from typing import Any, cast

import attrs
from attrs import field, frozen

from contextkit._validators import at_least, is_bool, non_negative_number
from contextkit.errors import UnknownModelError, ValidationError
from contextkit.tokens.chat import ChatTemplate, ReasoningReplay, Tokenizer
from contextkit.tokens.deepseek_v4 import DeepSeekV4Template
from contextkit.tokens.encoding import count_tokens_text
from contextkit.tokens.image_tokens import DEFAULT_IMAGE_LIMITS, ImageLimits
from contextkit.tokens.openai_chat import OpenAIChatTemplate

__all__ = [
    "ChatTemplate",
    "DeepSeekV4Template",
    "DeepSeekV4Tokenizer",
    "ImageLimits",
    "ModelSpec",
    "OpenAIChatTemplate",
    "Prices",
    "ReasoningReplay",
    "TiktokenTokenizer",
    "Tokenizer",
    "get_model",
    "known_models",
    "register_model",
    "spec_for",
]

_PER = 1_000_000


_price = non_negative_number("price")


@frozen(kw_only=True)
class Prices:
    """Prices per 1M tokens: prompt tokens served from cache, prompt tokens not, output.

    Reasoning tokens bill as output.
    """

    input_cache_hit: float = field(validator=_price)
    input_cache_miss: float = field(validator=_price)
    output: float = field(validator=_price)
    currency: str = "USD"

    def cost(self, prompt_cache_hit: int, prompt_cache_miss: int, completion: int) -> float:
        """What one call costs, in `currency`, from its usage token counts."""
        for what, n in (
            ("prompt_cache_hit", prompt_cache_hit),
            ("prompt_cache_miss", prompt_cache_miss),
            ("completion", completion),
        ):
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValidationError(f"{what} must be a non-negative integer, got {n!r:.40}")
        return (
            prompt_cache_hit * self.input_cache_hit
            + prompt_cache_miss * self.input_cache_miss
            + completion * self.output
        ) / _PER


@frozen
class DeepSeekV4Tokenizer:
    """DeepSeek V4's tokenizer; special-token strings in the text count as one token each."""

    def count(self, text: str) -> int:
        return count_tokens_text(text)


@frozen
class TiktokenTokenizer:
    """Counts with a tiktoken `Encoding` (e.g. `tiktoken.get_encoding("o200k_base")`).

    With `specials=True`, the encoding's special-token strings in the text count as those
    tokens (what a rendered template needs); otherwise all text is ordinary text.
    """

    encoding: Any = field(eq=False)
    specials: bool = False

    def count(self, text: str) -> int:
        if self.specials:
            return len(self.encoding.encode(text, allowed_special="all"))
        return len(self.encoding.encode_ordinary(text))


_positive = at_least(1)


def _valid_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ValidationError(
            f"{what} must be a non-empty id without spaces around, got {value!r:.80}"
        )
    return value


def _check_name(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    _valid_id(value, attribute.name)


@frozen(kw_only=True)
class ModelSpec:
    """Everything contextkit needs to budget, count and price calls to one model.

    `default_context_tokens` is the budget a new thread gets when none is given: a full
    window is rarely worth its price (a 1M-token DeepSeek V4 Pro prompt costs about $1.80
    uncached, every call), so DeepSeek models start at 131,072 and threads can raise it.
    `image_limits=None` means the model takes no images.
    """

    name: str = field(validator=_check_name)
    api_model: str = field(validator=_check_name)
    context_window: int = field(validator=_positive)
    max_output_tokens: int = field(validator=_positive)
    default_context_tokens: int = field(validator=_positive)
    prices: Prices | None = field(default=None)
    thinking_default: bool = field(default=False, validator=is_bool)
    reasoning_replay: ReasoningReplay = field(
        default=ReasoningReplay.NEVER, converter=ReasoningReplay
    )
    tokenizer: Tokenizer = field(factory=DeepSeekV4Tokenizer)
    template: ChatTemplate = field(default=cast("ChatTemplate", None))
    """How a request renders and counts; required (no silent default: a foreign model counted
    with DeepSeek's template would be called exact and be wrong)."""
    image_limits: ImageLimits | None = DEFAULT_IMAGE_LIMITS
    aliased_from: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.max_output_tokens > self.context_window:
            raise ValidationError(
                f"max_output_tokens ({self.max_output_tokens:,}) exceeds the context window "
                f"({self.context_window:,})"
            )
        if self.default_context_tokens > self.context_window:
            raise ValidationError(
                f"default_context_tokens ({self.default_context_tokens:,}) exceeds the context "
                f"window ({self.context_window:,})"
            )
        if self.template is None:
            raise ValidationError(
                f"model {self.name!r} needs template=: the chat template decides what a "
                "request costs; use DeepSeekV4Template() for DeepSeek V4, OpenAIChatTemplate() "
                "for an OpenAI-style estimate, or your own ChatTemplate"
            )
        if not all(callable(getattr(self.template, m, None)) for m in ("render", "count")):
            raise ValidationError("template must be a ChatTemplate (render and count methods)")
        if not isinstance(self.tokenizer, Tokenizer):
            raise ValidationError("tokenizer must have a count(text) -> int method")
        if self.prices is not None and not isinstance(self.prices, Prices):
            raise ValidationError(f"prices must be a Prices, got {type(self.prices).__name__}")

    def cost(self, prompt_cache_hit: int, prompt_cache_miss: int, completion: int) -> float | None:
        """Cost of one call in the model's currency, or None if its prices are unknown."""
        if self.prices is None:
            return None
        return self.prices.cost(prompt_cache_hit, prompt_cache_miss, completion)


@frozen
class _Alias:
    target: str
    thinking: bool | None = None
    deprecation: str | None = None


def _deepseek(name: str, prices: Prices) -> ModelSpec:
    return ModelSpec(
        name=name,
        api_model=name,
        context_window=1_048_576,
        max_output_tokens=384_000,
        default_context_tokens=131_072,
        prices=prices,
        thinking_default=True,
        reasoning_replay=ReasoningReplay.TOOL_TURNS,
        template=DeepSeekV4Template(),
    )


_BUILTIN = (
    _deepseek(
        "deepseek-v4-flash", Prices(input_cache_hit=0.028, input_cache_miss=0.14, output=0.28)
    ),
    _deepseek("deepseek-v4-pro", Prices(input_cache_hit=0.145, input_cache_miss=1.74, output=3.48)),
)


def _retired(alias: str, mode: str, thinking: str) -> _Alias:
    return _Alias(
        target="deepseek-v4-flash",
        thinking=mode == "enabled",
        deprecation=(
            f"model id {alias!r} was retired on 2026-07-24 15:59 UTC and the API rejects it; "
            f"contextkit uses 'deepseek-v4-flash' with thinking {mode} instead. Use "
            f"model='deepseek-v4-flash' and {thinking}"
        ),
    )


_lock = threading.Lock()
_models: dict[str, ModelSpec] = {spec.name: spec for spec in _BUILTIN}
_aliases: dict[str, _Alias] = {
    "deepseek-chat": _retired(
        "deepseek-chat", "disabled", 'extra_body={"thinking": {"type": "disabled"}}.'
    ),
    "deepseek-reasoner": _retired(
        "deepseek-reasoner", "enabled", "leave thinking on (the default)."
    ),
}


def get_model(name: str) -> ModelSpec:
    """The spec of a model id or alias; UnknownModelError (listing known ids) otherwise.

    A retired DeepSeek id warns (DeprecationWarning) and returns deepseek-v4-flash with that
    id's thinking mode as `thinking_default`.
    """
    with _lock:
        spec = _models.get(name) if isinstance(name, str) else None
        alias = _aliases.get(name) if isinstance(name, str) and spec is None else None
        if alias is not None:
            spec = _models[alias.target]
    if spec is None:
        known = known_models(aliases=True)
        raise UnknownModelError(
            f"unknown model {name!r:.80}; known models: {', '.join(known)} "
            "(add others with contextkit.models.register_model)"
        )
    if alias is None:
        return spec
    if alias.deprecation is not None:
        warnings.warn(alias.deprecation, DeprecationWarning, stacklevel=2)
    changes: dict[str, Any] = {"aliased_from": name}
    if alias.thinking is not None:
        changes["thinking_default"] = alias.thinking
    return attrs.evolve(spec, **changes)


def spec_for(model: str) -> ModelSpec:
    """The spec of a stored thread's model (retired ids resolve without a second warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return get_model(model)


def register_model(
    spec: ModelSpec, *, aliases: Iterable[str] = (), replace: bool = False
) -> ModelSpec:
    """Add a model (and plain aliases for it) to the registry; returns `spec`.

    Refuses to shadow a known id or alias unless `replace=True`.
    """
    if not isinstance(spec, ModelSpec):
        raise ValidationError(f"register_model takes a ModelSpec, got {type(spec).__name__}")
    names = [_valid_id(alias, "alias") for alias in aliases]
    if spec.name in names:
        raise ValidationError(f"{spec.name!r} cannot be an alias of itself")
    with _lock:
        taken = [n for n in (spec.name, *names) if n in _models or n in _aliases]
        if taken and not replace:
            raise ValidationError(
                f"model id(s) already registered: {', '.join(taken)}; pass replace=True"
            )
        _aliases.pop(spec.name, None)
        _models[spec.name] = spec
        for alias in names:
            _models.pop(alias, None)
            _aliases[alias] = _Alias(target=spec.name)
    return spec


def known_models(*, aliases: bool = False) -> tuple[str, ...]:
    """Registered model ids, sorted; with `aliases=True` the aliases too."""
    with _lock:
        names = set(_models) | (set(_aliases) if aliases else set())
    return tuple(sorted(names))
