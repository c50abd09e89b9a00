"""The fuzz tests: one per database and API family (see the package docstring)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pytest
from conftest import Database
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .cases_calls import build_cases, record_cases
from .cases_functions import function_cases
from .cases_search import search_cases
from .cases_threads import append_cases, extend_cases, import_cases, thread_cases
from .oracle import Case, Env

TOTAL = int(os.environ.get("CONTEXTKIT_FUZZ_EXAMPLES", "10000"))
WEIGHTS = {
    "threads": 16,
    "append": 20,
    "extend": 9,
    "build": 16,
    "record": 12,
    "functions": 18,
    "import": 9,
    "search": 10,
}
QUOTA = {k: math.ceil(TOTAL * w / sum(WEIGHTS.values())) for k, w in WEIGHTS.items()}

FAMILIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "threads": thread_cases,
    "append": append_cases,
    "extend": extend_cases,
    "build": build_cases,
    "record": record_cases,
    "functions": function_cases,
    "import": import_cases,
    "search": search_cases,
}


ASYNC_SHARE = 4
"""The async twins get a quarter of each family's examples: the same cases, awaited."""


@pytest.mark.parametrize("twin", ["sync", "async"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fuzz(database: Database, family: str, twin: str) -> None:
    env = Env(database, family, twin)
    quota = QUOTA[family] if twin == "sync" else math.ceil(QUOTA[family] / ASYNC_SHARE)
    try:

        @settings(
            max_examples=quota,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
            phases=(Phase.generate,),
        )
        @given(c=FAMILIES[family]())
        def fuzz(c: Case) -> None:
            env.run(c)

        fuzz()
        print(f"\n{env.report()}")
        if env.violations:
            shown = "\n".join(env.violations[:5])
            pytest.fail(f"{len(env.violations)} violation(s), first:\n{shown}", pytrace=False)
        assert env.examples >= quota, env.report()
        assert env.store.check() == []
    finally:
        env.close()


def test_quotas_add_up_to_the_example_count() -> None:
    """Each family test asserts it ran its quota, so together they run at least TOTAL."""
    assert sum(QUOTA.values()) >= TOTAL
