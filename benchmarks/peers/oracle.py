"""Prompt token counts that do not come from contextkit's counter.

HF `tokenizers` with DeepSeek's own `tokenizer.json` over the prompt text as DeepSeek's V4
encoder renders the request (`contextkit.render_prompt`, which renders 816/816 golden
requests of `tests/data/deepseek_v4_encoder.jsonl.gz` byte for byte; `check_golden` verifies
that and the HF counts against the golden counts on every run, so the benchmark's budget
checks rest on DeepSeek's encoder and HF's tokenizer, not on contextkit's token counter).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import attrs

import contextkit
from contextkit.models import get_model
from contextkit.tokens.deepseek_v4 import DeepSeekV4Template

from .common import MODEL, Msg

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "data" / "deepseek_v4_encoder.jsonl.gz"


@cache
def _hf() -> Any:
    from bench_tokens import tokenizer_json
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_json()))


def preload() -> None:
    _hf()


def count_text(text: str) -> int:
    """HF's token count of a rendered prompt (added-token strings count as one token)."""
    return len(_hf().encode(text, add_special_tokens=False).ids)


def prompt_tokens(
    messages: Sequence[Msg], *, tools: Sequence[Msg] | None = None, thinking: bool = True
) -> int:
    """Tokens DeepSeek bills for this request, counted by HF over the V4 rendering."""
    text = contextkit.render_prompt(list(messages), tools=tools, thinking=thinking, model=MODEL)
    return count_text(text)


def check_golden() -> dict[str, int]:
    """The oracle against DeepSeek's encoder: every golden request renders to its golden
    text and HF counts that text as the golden count."""
    launch = attrs.evolve(get_model(MODEL), template=DeepSeekV4Template("launch"))
    renders = counts = records = 0
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            request = record["request"]
            text = contextkit.render_prompt(
                request["messages"],
                tools=request["tools"],
                thinking=request["thinking"],
                reasoning_effort=request["reasoning_effort"],
                model=launch,
            )
            records += 1
            renders += text != record["prompt"]
            counts += count_text(record["prompt"]) != record["prompt_tokens"]
    return {"records": records, "render_mismatches": renders, "count_mismatches": counts}
