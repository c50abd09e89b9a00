"""Recall: search queries, hits with snippets, and the `recall` tool a model can call.

Pure code around `contextkit.db.search` (which runs the queries):

- `parse_query` turns what a user or a model typed into words (`contextkit.fulltext`), and
  `Query.match` compiles them into an FTS5 expression and a PostgreSQL tsquery. Only words
  reach either syntax, each one quoted, so no input can change the query's structure;
  malformed input gives a `ValidationError` or simply fewer words.
- `hits` turns what the database found into `SearchHit` values, each with a snippet of the
  original text around the matches, the matches marked.
- `recall_tool(thread)` is the tool schema and executor behind `Conversation.run(...,
  recall=True)`: it searches the thread's whole history, the messages summarized away
  included, and answers with excerpts that cite their seqs, within a token budget.

Query syntax: words (every one must match, in any order), `"a phrase"` (adjacent words),
`prefix*` (a word or a phrase's last word starting so; at least two letters, or one CJK
character). Case and accents do not matter;
`A-5531` or `jane.doe@example.com` are found as the phrases of their words; CJK text is
found by any run of its characters. Anything else (`AND`, `OR`, `NOT`, parentheses, `:`,
`^`) is just text.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast, overload

from attrs import field, frozen

from contextkit import fulltext
from contextkit._validators import check_int
from contextkit.counting import count_tokens
from contextkit.db.search import SUMMARY_ROLE, Found, Match
from contextkit.errors import ValidationError
from contextkit.types import Role, check_text

if TYPE_CHECKING:
    from contextkit.thread import AsyncThread, BaseThread, Thread

__all__ = [
    "MAX_LIMIT",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_WORDS",
    "RECALL_TOOL_NAME",
    "ROLES",
    "AsyncRecallTool",
    "Query",
    "RecallTool",
    "SearchHit",
    "Term",
    "check_limit",
    "check_roles",
    "hits",
    "parse_query",
    "recall_tool",
    "snippet",
]

MAX_QUERY_CHARS = 2_000
MAX_QUERY_WORDS = 64
MAX_LIMIT = 1_000
ROLES = (*(r.value for r in Role), SUMMARY_ROLE)
"""What `roles=` may name: the message roles, and "summary" for the rolling summaries."""
RECALL_TOOL_NAME = "recall"
SNIPPET_CHARS = 240
MARK_OPEN = MARK_CLOSE = "**"
"""How a snippet marks a match (`**word**`, as Markdown bold)."""


@frozen
class Term:
    """One query term: a word, or a phrase of adjacent words; `prefix`: its last word is a
    prefix."""

    words: tuple[str, ...]
    prefix: bool = False

    def fts5(self) -> str:
        quoted = '"' + " ".join(self.words).replace('"', '""') + '"'
        return quoted + ("*" if self.prefix else "")

    def tsquery(self) -> str:
        parts = ["'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in self.words]
        if self.prefix:
            parts[-1] += ":*"
        return "(" + " <-> ".join(parts) + ")"


@frozen
class Query:
    """A parsed query: what was asked and its terms (every one must match)."""

    text: str
    terms: tuple[Term, ...]

    def match(self) -> Match:
        """The query for the database: FTS5 and tsquery forms of the same terms."""
        return Match(
            fts5=" ".join(t.fts5() for t in self.terms),
            tsquery=" & ".join(t.tsquery() for t in self.terms),
        )


def _pieces(query: str) -> Iterator[tuple[str, bool, bool]]:
    """(text, quoted, prefix) of each whitespace-separated word or quoted phrase; an
    unbalanced quote runs to the end."""
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        if query[i] == '"':
            end = query.find('"', i + 1)
            end = n if end < 0 else end
            body, i = query[i + 1 : end], end + 1
            prefix = i < n and query[i] == "*"
            yield body, True, prefix
            i += prefix
            continue
        j = i
        while j < n and not query[j].isspace() and query[j] != '"':
            j += 1
        piece = query[i:j]
        yield piece.rstrip("*"), False, piece.endswith("*")
        i = j


def parse_query(query: object) -> Query:
    """Parse user or model input into a `Query` (see the module docstring for the syntax).

    `ValidationError` for anything but text, text no database stores (a NUL, a lone
    surrogate), more than `MAX_QUERY_CHARS` characters or `MAX_QUERY_WORDS` words, or no
    word at all.
    """
    if not isinstance(query, str):
        raise ValidationError(f"a search query must be a string, got {type(query).__name__}")
    if "\x00" in query:
        raise ValidationError("the search query contains a NUL character (\\x00)")
    check_text(query, "the search query")
    if len(query) > MAX_QUERY_CHARS:
        raise ValidationError(
            f"the search query is {len(query):,} characters long; the limit is "
            f"{MAX_QUERY_CHARS:,} (search for a few distinctive words)"
        )
    terms: list[Term] = []
    count = 0
    for text, _quoted, prefix in _pieces(query):
        found = tuple(fulltext.words(text))
        if not found:
            continue
        if prefix and len(found[-1]) < 2 and not fulltext.has_cjk(found[-1]):
            prefix = False  # a one-letter prefix would match most of the index: the word
        count += len(found)
        term = Term(found, prefix)
        if term not in terms:
            terms.append(term)
    if count > MAX_QUERY_WORDS:
        raise ValidationError(f"the search query has {count} words; the limit is {MAX_QUERY_WORDS}")
    if not terms:
        raise ValidationError(
            f"the search query {query!r:.60} has no words to search for (letters or digits)"
        )
    return Query(query, tuple(terms))


def check_roles(roles: object) -> tuple[str, ...] | None:
    """`roles=` checked: None (all), or some of `ROLES` (strings or `Role` values)."""
    if roles is None:
        return None
    if isinstance(roles, (str, Role)):
        roles = [roles]
    if isinstance(roles, Mapping) or not isinstance(roles, Iterable):
        raise ValidationError(f"roles must be a list of roles, got {type(roles).__name__}")
    out: list[str] = []
    for role in roles:
        value = role.value if isinstance(role, Role) else role
        if not isinstance(value, str) or value not in ROLES:
            raise ValidationError(f"roles may name {', '.join(ROLES)}; got {role!r:.40}")
        if value not in out:
            out.append(value)
    if not out:
        raise ValidationError("roles is empty; pass None to search every role")
    return tuple(out)


def check_limit(limit: object) -> int:
    """`limit=` checked: an int from 1 to `MAX_LIMIT`."""
    return check_int(limit, "limit", 1, MAX_LIMIT)


@frozen(kw_only=True)
class SearchHit:
    """One message (or summary) that matches a search.

    `snippet` is an excerpt of its text around the matches, each match marked `**so**`;
    `excerpt` is the same text unmarked, and `matches` the (start, end) of each match in it.
    `rank`: higher is better, comparable within one result list. A summary hit has role
    "summary", `summary` its number and `seq` the last message it covers.
    """

    thread_id: str
    owner: str
    seq: int
    role: str
    snippet: str
    rank: float
    excerpt: str = ""
    matches: tuple[tuple[int, int], ...] = ()
    summary: int | None = field(default=None)


def _occurrences(text: str, terms: Sequence[Term]) -> list[tuple[int, int, int]]:
    """(start, end, term index) of every occurrence of the terms in `text`."""
    found = list(fulltext.spans(text))
    words = [w for w, _, _ in found]
    at: dict[str, list[int]] = {}
    for i, word in enumerate(words):
        at.setdefault(word, []).append(i)
    out = []
    for index, term in enumerate(terms):
        size, last = len(term.words), term.words[-1]
        if size == 1 and term.prefix:
            starts = [i for w, positions in at.items() if w.startswith(last) for i in positions]
        else:
            starts = at.get(term.words[0], [])
        for i in starts:
            tail = words[i : i + size]
            if len(tail) < size or tuple(tail[:-1]) != term.words[:-1]:
                continue
            if tail[-1] == last or (term.prefix and tail[-1].startswith(last)):
                out.append((found[i][1], found[i + size - 1][2], index))
    return sorted(out)


def snippet(
    text: str, terms: Sequence[Term], size: int = SNIPPET_CHARS
) -> tuple[str, list[tuple[int, int]]]:
    """An excerpt of about `size` characters of `text` around the densest cluster of
    matches (`…` where it cuts), and the (start, end) of the matches in the excerpt."""
    found = _occurrences(text, terms)
    start = 0
    if found:
        best = (-1, 0)
        for anchor, _, _ in found:
            low = max(0, anchor - size // 4)
            inside = {t for s, e, t in found if s >= low and e <= low + size}
            best = max(best, (len(inside), -low))
        start = -best[1]
    end = min(len(text), start + size)
    if end == len(text):
        start = max(0, end - size)
    if start > 0:  # begin at a word
        space = text.rfind(" ", max(0, start - 20), start)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.find(" ", end, end + 20)
        end = space if space >= 0 else end
    lead = "…" if start > 0 else ""
    excerpt = lead + " ".join(text[start:end].split()) + ("…" if end < len(text) else "")
    # find the matches again in the excerpt (whitespace was collapsed)
    spans: list[tuple[int, int]] = []
    for s, e, _ in _occurrences(excerpt, terms):
        if spans and s <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(e, spans[-1][1]))
        else:
            spans.append((s, e))
    return excerpt, spans


def _marked(excerpt: str, spans: Sequence[tuple[int, int]]) -> str:
    out, last = [], 0
    for s, e in spans:
        out += [excerpt[last:s], MARK_OPEN, excerpt[s:e], MARK_CLOSE]
        last = e
    out.append(excerpt[last:])
    return "".join(out)


def hits(found: Iterable[Found], query: Query) -> list[SearchHit]:
    """What the database found, as `SearchHit` values with their snippets."""
    out = []
    for f in found:
        excerpt, spans = snippet(f.text, query.terms)
        out.append(
            SearchHit(
                thread_id=f.thread_id,
                owner=f.owner,
                seq=f.seq,
                role=f.role,
                snippet=_marked(excerpt, spans),
                rank=f.score,
                excerpt=excerpt,
                matches=tuple(spans),
                summary=f.summary_n or None,
            )
        )
    return out


_DESCRIPTION = (
    "Search this conversation's full history, including earlier messages that are no longer "
    "shown to you (summarized away). Use it before saying you do not know something the user "
    "told you earlier, or to check exact details (numbers, names, identifiers). Returns "
    "excerpts with their message numbers [#seq], best match first. Query syntax: words (all "
    'must match, any order), "an exact phrase", prefix* ; case and accents do not matter.'
)

RECALL_ROLES = ("user", "assistant", "tool", "system", "developer")
"""What the recall tool searches: messages (the summary in force is already in the prompt)."""


@frozen
class RecallTool:
    """The `recall` tool for a thread: `schema` for `tools=`, and the executor.

    `tool(query=..., limit=...)` runs a search and returns the tool result text (bad
    arguments raise `ValidationError`); `tool.run(arguments)` takes a tool call's JSON
    arguments (or their dict) and always returns text, an error included, for the model to
    read. Unpacks as `schema, execute = recall_tool(thread)`.
    """

    thread: BaseThread = field(repr=False)
    max_tokens: int = 800
    limit: int = 8
    name: str = RECALL_TOOL_NAME

    @property
    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": _DESCRIPTION,
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {
                            "type": "string",
                            "description": "Distinctive words to look for, e.g. "
                            '"order number" or refund* or a name.',
                        },
                        "limit": {
                            "type": "integer",
                            "description": f"At most this many excerpts (default {self.limit}).",
                        },
                    },
                    "required": ["query"],
                },
            },
        }

    def __iter__(self) -> Iterator[Any]:
        return iter((self.schema, self.run))

    def __call__(self, query: str, limit: int | None = None) -> str:
        limit = self.limit if limit is None else check_limit(limit)
        found = cast("Thread", self.thread).search(query, limit=limit, roles=RECALL_ROLES)
        return recall_text(query, found, model=self.thread.model, max_tokens=self.max_tokens)

    def run(self, arguments: str | Mapping[str, Any]) -> str:
        """The tool result for a call's `arguments` (JSON text or a dict): never raises on
        the model's input, so a loop can always answer the call."""
        try:
            return self(*_arguments(arguments))
        except (ValueError, ValidationError) as exc:
            return f"{fulltext.RECALL_MARK} Error: {exc}"


@frozen
class AsyncRecallTool(RecallTool):
    """`RecallTool` of an `AsyncThread`: calling it and `run` are awaited."""

    async def __call__(  # type: ignore[override]
        self, query: str, limit: int | None = None
    ) -> str:
        limit = self.limit if limit is None else check_limit(limit)
        thread = cast("AsyncThread", self.thread)
        found = await thread.search(query, limit=limit, roles=RECALL_ROLES)
        return recall_text(query, found, model=self.thread.model, max_tokens=self.max_tokens)

    async def run(  # type: ignore[override]
        self, arguments: str | Mapping[str, Any]
    ) -> str:
        """`RecallTool.run`, awaited."""
        try:
            return await self(*_arguments(arguments))
        except (ValueError, ValidationError) as exc:
            return f"{fulltext.RECALL_MARK} Error: {exc}"


def _arguments(arguments: str | Mapping[str, Any]) -> tuple[Any, Any]:
    """A recall call's (query, limit) from its JSON arguments or their dict."""
    args = json.loads(arguments or "{}") if isinstance(arguments, str) else arguments
    if not isinstance(args, Mapping):
        raise ValidationError("the arguments must be a JSON object")
    unknown = set(args) - {"query", "limit"}
    if unknown:
        raise ValidationError(f"unknown argument(s) {sorted(map(str, unknown))}")
    if "query" not in args:
        raise ValidationError("the query argument is missing")
    return args["query"], args.get("limit")


@overload
def recall_tool(
    thread: AsyncThread, *, max_tokens: int = ..., limit: int = ...
) -> AsyncRecallTool: ...
@overload
def recall_tool(thread: Thread, *, max_tokens: int = ..., limit: int = ...) -> RecallTool: ...
@overload
def recall_tool(thread: BaseThread, *, max_tokens: int = ..., limit: int = ...) -> RecallTool: ...
def recall_tool(
    thread: BaseThread, *, max_tokens: int = 800, limit: int = 8
) -> RecallTool | AsyncRecallTool:
    """The `recall` tool of `thread`: its schema and executor, for your own tool loop.

    Results are at most `max_tokens` tokens (in the thread's model's tokenizer) and at most
    `limit` excerpts; each cites its message as `[#seq role]`. `Conversation.run(...,
    recall=True)` offers it to the model for you. For an `AsyncThread` the executor is
    awaited (`AsyncRecallTool`).
    """
    check_int(max_tokens, "max_tokens", 64, 100_000)
    check_limit(limit)
    if inspect.iscoroutinefunction(getattr(thread, "search", None)):
        return AsyncRecallTool(thread, max_tokens, limit)
    return RecallTool(thread, max_tokens, limit)


def recall_text(query: str, found: Sequence[SearchHit], *, model: str, max_tokens: int) -> str:
    """A recall result: a header line, then one `[#seq role] snippet` line per hit, best
    first, as many as fit in `max_tokens` (a snippet that alone is too long is cut)."""
    shown = " ".join(query.split())[:200]
    if not found:
        return (
            f'{fulltext.RECALL_MARK} Nothing in this conversation\'s history matches "{shown}". '
            "Try other or fewer words, or a prefix*."
        )
    header = (
        f"{fulltext.RECALL_MARK} {len(found)} message(s) of this conversation's history match "
        f'"{shown}", best first; [#n] is the message number.'
    )
    lines = [header]
    used = count_tokens(header, model=model) + _MORE_TOKENS
    for hit in found:
        line = f"[#{hit.seq} {hit.role}] {hit.snippet}"
        cost = count_tokens("\n" + line, model=model)
        if used + cost > max_tokens:
            if len(lines) == 1:  # the best hit alone is too long: cut it to fit
                lines.append(_cut(line, max_tokens - used, model))
            break
        lines.append(line)
        used += cost
    left = len(found) - (len(lines) - 1)
    if left:
        lines.append(f"({left} more left out to stay short; ask with more specific words.)")
    return "\n".join(lines)


_MORE_TOKENS = 24
"""Room kept for the closing "(n more left out ...)" line."""


def _cut(line: str, budget: int, model: str) -> str:
    """The longest prefix of `line` (plus "…") within `budget` tokens."""
    low, high = 0, len(line)
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens("\n" + line[:mid] + "…", model=model) <= budget:
            low = mid
        else:
            high = mid - 1
    return line[:low] + "…"
