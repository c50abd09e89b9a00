"""The `contextkit` command: inspect threads, costs and cache behaviour; demo; import/export.

Read commands print rich tables, or JSON with `--json` (for scripts). Each command imports
what it needs (the database layer, rich, openai) when it runs, so `contextkit --help` starts
in a fraction of the time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from contextkit.errors import ContextKitError, NotFound

__all__ = ["main"]

_URL_HELP = "Database URL (default: $CONTEXTKIT_URL, else sqlite:///./contextkit.db)."


class _Ctx:
    """Opens the store on first use, so `--help` never touches a database."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            import contextkit

            self._store = contextkit.open(self.url)
        return self._store

    def thread(self, thread_id: str, owner: str | None = None) -> Any:
        """The thread `thread_id` (of `owner`; any owner's when only one has that id)."""
        thread = self.store.admin_thread(thread_id, owner=owner)
        if thread is None:
            where = self.store.url.render_as_string(hide_password=True)
            if owner is None:
                raise NotFound(
                    f"no thread {thread_id!r} in {where}; list the threads with `contextkit "
                    "threads ls` (another database: --url URL or $CONTEXTKIT_URL)"
                )
            raise NotFound(
                f"no thread {thread_id!r} of owner {owner!r} in {where}; list that owner's "
                f"threads with `contextkit threads ls --owner {owner}`, or leave out --owner "
                "to find the id under any owner"
            )
        return thread


def _console() -> Any:
    from rich.console import Console

    return Console()


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
)
_owner_option = click.option(
    "--owner",
    default=None,
    help="The thread's owner (ids are unique per owner; needed when several share one).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="contextkit")
@click.option("--url", envvar="CONTEXTKIT_URL", default=None, help=_URL_HELP)
@click.pass_context
def cli(ctx: click.Context, url: str | None) -> None:
    """Inspect and manage contextkit conversation stores."""
    ctx.obj = _Ctx(url)


@cli.command("demo")
@click.option("--db", "db_url", default=None, help="Database URL (default: a temporary file).")
@_json_option
def demo_cmd(db_url: str | None, as_json: bool) -> None:
    """Run a scripted conversation against a local DeepSeek-compatible server (no API key).

    Chat, an image, a tool call in thinking mode and enough turns for a compaction; prints
    each call's prompt tokens, cache hits and cost, then the thread's totals.
    """
    import attrs

    from contextkit.demo import run_demo

    if as_json:
        stats, calls = run_demo(db_url)
        _emit_json({"calls": [attrs.asdict(c) for c in calls], "stats": _stats_dict(stats)})
        return
    from rich.live import Live

    console = _console()
    console.print("[bold]contextkit demo[/] - local DeepSeek-compatible server, no API key")
    table, row = _demo_table(console.width)
    with Live(table, console=console, refresh_per_second=8):

        def on_call(c: Any) -> None:
            table.add_row(*row(c))

        stats, calls = run_demo(db_url, on_call=on_call)
    console.print()
    console.print(
        f"[bold]{stats.calls} calls[/], {stats.messages} messages stored (none lost), "
        f"{stats.compactions} compaction(s), cache hit ratio {stats.cache_hit_ratio:.1%}, "
        f"prompt {stats.prompt_tokens:,} tok, completion {stats.completion_tokens:,} tok, "
        f"cost ${stats.cost_usd:.6f} at deepseek-v4-flash prices"
    )


def _demo_table(width: int) -> tuple[Any, Any]:
    """The demo's call table for a terminal `width` columns wide, and its row function.

    Figures never wrap or truncate: below 100 columns the table drops its borders and
    shortens headings; below 64 it also drops the completion column and marks a
    compaction with "*" beside the kind.
    """
    from rich import box
    from rich.table import Table

    wide, narrow = width >= 100, width < 64
    table = Table(
        box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD,
        caption=None if not narrow else "* compacted before this call",
        pad_edge=wide,
    )
    headings = (
        ["call", "kind", "prompt tok", "cache hit", "completion", "cost $", ""]
        if wide
        else ["#", "kind", "prompt", "hit", "out", "cost $", ""]
    )
    if narrow:
        del headings[6], headings[4]
    for i, heading in enumerate(headings):
        figure = i not in (1, len(headings) - 1) or (narrow and i == len(headings) - 1)
        table.add_column(heading, justify="right" if figure else "left", no_wrap=figure or wide)

    def row(c: Any) -> list[str]:
        ratio = c.cache_hit_tokens / c.prompt_tokens if c.prompt_tokens else 0.0
        cells = [
            str(c.n),
            c.kind + (" *" if narrow and c.compacted else ""),
            f"{c.prompt_tokens:,}",
            f"{ratio:.0%}",
            f"{c.completion_tokens:,}",
            f"{c.cost_usd:.6f}",
            "[yellow]compacted[/]" if c.compacted else "",
        ]
        if narrow:
            del cells[6], cells[4]
        return cells

    return table, row


@cli.command("serve-fake", epilog=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, type=int, help="Port (default: a free one).")
@click.option("--api-key", default=None, help="Require this bearer key.")
@click.option(
    "--script",
    "script",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Queue the replies, tool calls and faults of this JSON / JSON-lines file.",
)
def serve_fake(host: str, port: int, api_key: str | None, script: Path | None) -> None:
    """Run the local DeepSeek-compatible server for your own integration tests.

    Prints its base URL, then serves until Ctrl-C. Without a script it echoes.

    \b
    A script is a JSON array of entries, or JSON lines (one entry a line), queued in order:
      {"content": "Paris.", "reasoning": "..."}                  a reply (any subset,
                                                                  also "finish_reason")
      {"tool_calls": [{"name": "f", "arguments": {"x": 1}}]}     a tool-call reply
      {"fault": {"status": 429, "times": 2, "retry_after": 1}}   an HTTP error status
      {"fault": {"drop": true}}  or  {"fault": {"drop_mid_stream": true}}
    Replies answer the next successful completions; faults hit the next requests first.
    While it runs, POST entries (one, or an array) to BASE_URL/_script to queue more.
    """
    from contextkit.testing.server import main as server_main

    args = ["--host", host, "--port", str(port)]
    if api_key is not None:
        args += ["--api-key", api_key]
    if script is not None:
        args += ["--script", str(script)]
    sys.exit(server_main(args))


_DEEPSEEK_HOST = "api.deepseek.com"


def _api_key(base_url: str) -> str:
    """The key for `base_url`: DeepSeek's API needs $DEEPSEEK_API_KEY; another server (a
    local or self-hosted one) gets a placeholder when none is set, as the SDK wants some key."""
    import os
    from urllib.parse import urlsplit

    key = os.environ.get("DEEPSEEK_API_KEY")
    if key:
        return key
    host = (urlsplit(base_url).hostname or "").lower()
    if host == _DEEPSEEK_HOST or host.endswith("." + _DEEPSEEK_HOST):
        raise click.UsageError(
            f"{base_url} needs an API key: set DEEPSEEK_API_KEY (or pass --base-url of "
            "another OpenAI-compatible server, or try `contextkit demo`, no key needed)"
        )
    return "unused"


@cli.command("chat")
@click.argument("thread_id")
@click.option("--model", default=None, help="Model of a new thread [default: deepseek-v4-flash].")
@click.option("--owner", default="", help="Thread owner.")
@click.option("--system", default=None, help="System prompt for a new thread.")
@click.option(
    "--base-url",
    default="https://api.deepseek.com",
    show_default=True,
    help="OpenAI-compatible API; only DeepSeek's own needs $DEEPSEEK_API_KEY.",
)
@click.option("--thinking/--no-thinking", default=None, help="Default: the model's.")
@click.option("--max-tokens", default=4_096, show_default=True)
@click.pass_obj
def chat_cmd(
    obj: _Ctx,
    thread_id: str,
    model: str | None,
    owner: str,
    system: str | None,
    base_url: str,
    thinking: bool | None,
    max_tokens: int,
) -> None:
    """Chat in a terminal on a stored thread (API key from $DEEPSEEK_API_KEY).

    Replies stream (reasoning dimmed). Commands: /stats, /compact, /image PATH, /quit.
    A bad image or a failed call prints an error and the chat goes on.
    """
    import openai

    import contextkit
    from contextkit.images import prepare_image
    from contextkit.models import spec_for

    key = _api_key(base_url)
    try:  # an existing thread keeps its settings; --model/--system must then match them
        obj.store.get_thread(thread_id, owner=owner)
    except NotFound:
        model = model or "deepseek-v4-flash"
    thread = obj.store.thread(thread_id, model=model, owner=owner, system=system)
    conv = contextkit.Conversation(
        openai.OpenAI(base_url=base_url, api_key=key), thread, max_tokens=max_tokens
    )
    console = _console()
    console.print(f"[bold]{thread_id}[/] ({len(thread)} messages). /quit to leave.")
    images: list[str] = []
    while True:
        try:
            line = console.input("[bold cyan]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        try:
            if line == "/stats":
                _emit_json(_stats_dict(thread.stats()))
            elif line == "/compact":
                summary = thread.compact()
                console.print("compacted" if summary else "nothing to compact")
            elif line.startswith("/image"):
                path = line.removeprefix("/image").strip()
                if not path:
                    raise contextkit.ValidationError("usage: /image PATH")
                # checked now, so a bad file is reported before the message it would go with
                limits = spec_for(thread.model).image_limits
                if limits is None:
                    raise contextkit.ValidationError(f"model {thread.model} takes no images")
                try:
                    prepare_image(path, limits=limits)
                except ContextKitError as exc:
                    raise type(exc)(f"cannot attach {path}: {exc}") from None
                images.append(path)
                console.print(f"[dim]{len(images)} image(s) attached to the next message[/]")
            else:
                attached, images = images, []
                stream = conv.send(line, images=attached or None, thinking=thinking, stream=True)
                for delta in stream:
                    style = "dim" if delta.kind == "reasoning" else None
                    console.print(delta.text, end="", style=style, highlight=False, markup=False)
                console.print()
        except (ContextKitError, openai.OpenAIError) as exc:
            console.print(f"error: {exc}", style="red", highlight=False, markup=False)


@cli.group("threads")
def threads_group() -> None:
    """List, show and delete threads."""


@threads_group.command("ls")
@click.option("--owner", default=None, help="Only this owner's threads (default: everyone's).")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="At most this many, most recently updated first.",
)
@_json_option
@click.pass_obj
def threads_ls(obj: _Ctx, owner: str | None, limit: int, as_json: bool) -> None:
    """List threads."""
    store = obj.store
    found = store.threads(all_owners=True) if owner is None else store.threads(owner=owner)
    rows: list[dict[str, Any]] = []
    for thread in found:
        if len(rows) >= limit:
            break
        info = thread.info()
        rows.append(
            {
                "id": info.id,
                "owner": info.owner,
                "model": info.model,
                "messages": info.message_count,
                "tokens": info.total_tokens,
                "updated_at": info.updated_at.isoformat(),
            }
        )
    if as_json:
        _emit_json(rows)
        return
    from rich.table import Table

    table = Table("thread", "owner", "model", "messages", "tokens", "updated (UTC)")
    for r in rows:
        table.add_row(
            r["id"],
            r["owner"] or "-",
            r["model"],
            f"{r['messages']:,}",
            f"{r['tokens']:,}",
            r["updated_at"][:19].replace("T", " "),
        )
    _console().print(table)


@threads_group.command("show")
@click.argument("thread_id")
@click.option("--last", default=20, show_default=True, help="Show the last N messages.")
@click.option("--reasoning", is_flag=True, help="Show reasoning_content too.")
@_owner_option
@_json_option
@click.pass_obj
def threads_show(
    obj: _Ctx, thread_id: str, last: int, reasoning: bool, owner: str | None, as_json: bool
) -> None:
    """Show a thread's settings and its latest messages."""
    thread = obj.thread(thread_id, owner)
    info = thread.info()
    start = max(0, info.message_count - last)
    messages = list(thread.messages(after=start))
    summaries = thread.summaries()
    if as_json:
        _emit_json(
            {
                **info.settings(),
                "messages": info.message_count,
                "tokens": info.total_tokens,
                "summaries": [s.upto_seq for s in summaries],
                "last": [
                    {"seq": m.seq, "tokens": m.token_count, **m.to_openai(reasoning=reasoning)}
                    for m in messages
                ],
            }
        )
        return
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    console.print(
        f"[bold]{escape(info.id)}[/] owner={escape(info.owner or '-')} model={info.model} "
        f"budget={info.max_context_tokens:,} messages={info.message_count:,} "
        f"tokens={info.total_tokens:,} summaries={len(summaries)}"
    )
    if info.system:
        console.print(f"[dim]system:[/] {escape(info.system[:200])}")
    table = Table("seq", "role", "tokens", "content")
    for m in messages:
        text = m.text
        if m.tool_calls:
            text += " ".join(
                f"[{c.function.name}({c.function.arguments[:60]})]" for c in m.tool_calls
            )
        if reasoning and m.reasoning_content:
            text = f"[dim]{escape(m.reasoning_content[:300])}[/]\n" + escape(text[:500])
        else:
            text = escape(text[:500])
        role = m.role.value + (" (pinned)" if m.pinned else "")
        table.add_row(str(m.seq), role, f"{m.token_count or 0:,}", text)
    console.print(table)


@threads_group.command("delete")
@click.argument("thread_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_owner_option
@click.pass_obj
def threads_delete(obj: _Ctx, thread_id: str, yes: bool, owner: str | None) -> None:
    """Delete a thread and everything stored with it."""
    thread = obj.thread(thread_id, owner)
    if not yes:
        click.confirm(f"delete thread {thread_id!r} ({len(thread)} messages)?", abort=True)
    thread.delete()
    click.echo(f"deleted {thread_id}")


@cli.command("search")
@click.argument("query")
@click.option("--thread", "thread_id", default=None, help="Search this thread only.")
@click.option(
    "--owner",
    default=None,
    help='Whose threads to search (default: the default owner ""; with --thread: the '
    "thread's owner, needed when several share its id).",
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["user", "assistant", "tool", "system", "developer", "summary"]),
    help="Only messages of this role (repeatable); summary: the rolling summaries.",
)
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1_000))
@_json_option
@click.pass_obj
def search_cmd(
    obj: _Ctx,
    query: str,
    thread_id: str | None,
    owner: str | None,
    roles: tuple[str, ...],
    limit: int,
    as_json: bool,
) -> None:
    """Full-text search of stored messages, best match first, matches highlighted.

    \b
    QUERY: words (all must match, any order), "a phrase", prefix*; case and accents do
    not matter, CJK text is found by any run of its characters. Examples:
      contextkit search 'order 5512' --owner alice
      contextkit search '"gate code"' --thread support-42 --json
    """
    options: dict[str, Any] = {"limit": limit, "roles": list(roles) or None}
    if thread_id is not None:
        hits = obj.thread(thread_id, owner).search(query, **options)
    else:
        hits = obj.store.search(query, owner=owner or "", **options)
    if as_json:
        import attrs

        _emit_json([attrs.asdict(h) for h in hits])
        return
    console = _console()
    if not hits:
        console.print("no matches", highlight=False)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table("thread", "seq", "role", "rank", "snippet")
    for hit in hits:
        text = Text(hit.excerpt)
        for start, end in hit.matches:
            text.stylize("bold yellow", start, end)
        role = hit.role if hit.summary is None else f"summary {hit.summary}"
        table.add_row(hit.thread_id, str(hit.seq), role, f"{hit.rank:.3g}", text)
    console.print(table)


def _stats_dict(stats: Any) -> dict[str, Any]:
    import attrs

    data = attrs.asdict(stats)
    data["cache_hit_ratio"] = stats.cache_hit_ratio
    return data


@cli.command("stats")
@click.argument("thread_id", required=False)
@_owner_option
@_json_option
@click.pass_obj
def stats_cmd(obj: _Ctx, thread_id: str | None, owner: str | None, as_json: bool) -> None:
    """Usage, cache hits and cost: of one thread, or per thread for the whole store.

    Also the calibration learned from reported usage: per model and prompt structure, the
    tokens the provider counted beyond contextkit's count (a constant preamble shows here).
    """
    if thread_id:
        threads = [obj.thread(thread_id, owner)]
    elif owner is not None:
        threads = list(obj.store.threads(owner=owner))
    else:
        threads = list(obj.store.threads(all_owners=True))
    learned = {m: obj.store.calibration(m).as_dict() for m in sorted({t.model for t in threads})}
    rows = [
        {"thread": t.id, **_stats_dict(t.stats()), "calibration": learned[t.model]} for t in threads
    ]
    if as_json:
        _emit_json(rows[0] if thread_id else rows)
        return
    from rich.table import Table

    table = Table(
        "thread",
        "messages",
        "calls",
        "prompt tok",
        "cache hit",
        "completion",
        "cost $",
        "compactions",
        "prefix breaks",
    )
    for r in rows:
        table.add_row(
            r["thread"],
            f"{r['messages']:,}",
            f"{r['calls']:,}",
            f"{r['prompt_tokens']:,}",
            f"{r['cache_hit_ratio']:.1%}",
            f"{r['completion_tokens']:,}",
            f"{r['cost_usd']:.6f}",
            str(r["compactions"]),
            ", ".join(f"{k} {n}" for k, n in r["prefix_breaks"].items()) or "-",
        )
    _console().print(table)
    corrections = Table("model", "prompt structure", "learned correction (tokens)")
    for model, deltas in learned.items():
        for structure, delta in sorted(deltas.items()):
            corrections.add_row(model, structure, f"{delta:+,}")
    if corrections.row_count:
        _console().print(corrections)


@cli.command("export")
@click.argument("thread_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Export every thread.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@_owner_option
@click.pass_obj
def export_cmd(
    obj: _Ctx,
    thread_ids: tuple[str, ...],
    everything: bool,
    output: Path | None,
    owner: str | None,
) -> None:
    """Write threads as JSON lines (to stdout, or -o FILE): lossless, re-importable.

    With --owner: that owner's threads only (--all) or the named ids of that owner.
    """

    from contextkit.db import transfer

    if not thread_ids and not everything:
        raise click.UsageError("name threads to export, or pass --all")

    def records() -> Iterator[dict[str, Any]]:
        if everything:
            yield from obj.store.export_records(owner=owner)
        for thread_id in thread_ids:
            yield from transfer.export_thread(obj.thread(thread_id, owner).ref)

    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for record in records():
            out.write(transfer.to_line(record))
    finally:
        if output:
            out.close()


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_cmd(obj: _Ctx, path: Path) -> None:
    """Import threads from an export file (JSON lines), all or nothing: a bad record, or a
    thread whose owner already has its id, anywhere in the file, imports none of it."""
    from rich.console import Console
    from rich.progress import Progress

    from contextkit.db import transfer

    size = path.stat().st_size
    with (
        path.open("r", encoding="utf-8") as f,
        Progress(console=Console(stderr=True), transient=True) as progress,
    ):
        task = progress.add_task("importing", total=size)

        def lines() -> Iterator[str]:
            for line in f:
                progress.advance(task, len(line.encode()))
                yield line

        imported = obj.store.import_records(transfer.read_jsonl(lines()))
    click.echo(f"imported {len(imported)} thread(s)")


@cli.group("db")
def db_group() -> None:
    """Schema migrations and integrity checks."""


@db_group.command("upgrade")
@click.argument("url", required=False)
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_obj
def db_upgrade(obj: _Ctx, url: str | None, revision: str) -> None:
    """Create or upgrade the database at URL (default: the global --url) to the newest
    schema, or to --revision; never back to an older one."""
    from contextkit.db import engine as db
    from contextkit.db import migrate

    engine = db.create_engine(url or obj.url)
    try:
        before = migrate.current_revision(engine)
        after = migrate.upgrade(engine, revision)
    finally:
        engine.dispose()
    shown = engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{shown}: already at revision {after}")
    else:
        click.echo(f"{shown}: upgraded {before or 'empty database'} -> {after}")


@db_group.command("current")
@click.argument("url", required=False)
@_json_option
@click.pass_obj
def db_current(obj: _Ctx, url: str | None, as_json: bool) -> None:
    """Print the schema revision of the database at URL (default: the global --url) and the
    newest one."""
    from contextkit.db import engine as db
    from contextkit.db import migrate

    engine = db.create_engine(url or obj.url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    if as_json:
        _emit_json({"current": current, "head": head, "up_to_date": current == head})
        return
    state = "up to date" if current == head else "needs: contextkit db upgrade"
    click.echo(f"current: {current or 'none'}  head: {head}  ({state})")


@db_group.command("check")
@click.argument("url", required=False)
@_json_option
@click.pass_obj
def db_check(obj: _Ctx, url: str | None, as_json: bool) -> None:
    """Check integrity: contiguous seqs, token totals, summaries, pending tool calls."""

    if url:
        obj.url = url
    problems = obj.store.check()
    if as_json:
        _emit_json({"ok": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            click.echo(f"problem: {problem}", err=True)
    else:
        click.echo("ok: no problems found")
    if problems:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point: contextkit errors print as one line and exit with status 1."""
    try:
        cli.main(args=argv, prog_name="contextkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ContextKitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
