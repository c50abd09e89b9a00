"""Adversarial inputs across the public API: only ContextKitError escapes, nothing is written.

Issue acceptance: hypothesis generates >= 10,000 invalid or adversarial inputs across the
public API (wrong shapes and types, huge strings, NUL bytes, lone surrogates, absurd token
budgets, SQL-looking ids and owners, other owners' thread ids, corrupt images), on SQLite and
on PostgreSQL each. Every call either returns (adversarial but valid input) or raises a
`ContextKitError` subclass, and a call that raises leaves every contextkit table exactly as
it was: row counts and a digest of all rows (`checksum`). The checksum is taken after every
call that sent the database anything but plain reads (a write transaction, any non-SELECT
statement, SELECT ... FOR UPDATE), and after every 25th call whatever it sent.

One test per API family runs its examples against one seeded database (two owners' threads
with tool calls, an image, a pinned message, an idempotency key, a recorded call, a summary,
and threads with SQL-looking ids and owners). Each input says what it expects:

- INVALID: bad input to a write API; it must raise, and write nothing.
- READ: a read (or a no-op write, e.g. replaying a recorded response); it may return, but
  must never change the database.
- ANY: valid but adversarial input to an API that may legitimately write (a prompt build
  that moves the cut point, a compaction); it may return and write, or raise and not write.

The family quotas add up to `CONTEXTKIT_FUZZ_EXAMPLES` (default 10,000) per database;
generation is derandomized, so every run (and CI) tries the same inputs.

The cases of a family share one database, so a violation is noted and the run goes on: the
test then fails listing every violating input in the order met (Hypothesis does not shrink,
which against shared state would blame a later, innocent input). With
`CONTEXTKIT_FUZZ_COLLECT=<file>` the violations are also appended to that file.

Modules: `data` (the seeded threads' ids, owners and contents; hostile constants; images),
`oracle` (the seed, the checksum, `Case` and the `Env` that runs and judges one),
`strategies` (building blocks and messages), `cases_threads`, `cases_calls`,
`cases_functions` and `cases_search` (a strategy of cases per API family; search checks
that no owner ever gets another owner's hits), `test_fuzz` (the tests, the families
and their quotas).
"""

import pkgutil

import pytest

# The helpers' asserts (the seed's, a case's `post` check) explain themselves as in a test.
pytest.register_assert_rewrite(*(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)))
