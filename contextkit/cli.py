"""The `contextkit` command."""

from __future__ import annotations

import sys

import click

from contextkit.errors import ContextKitError
from contextkit.store import engine as db
from contextkit.store import migrate

__all__ = ["main"]

_URL_HELP = "Database URL (default: $CONTEXTKIT_URL, else sqlite:///./contextkit.db)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="contextkit")
def cli() -> None:
    """Inspect and manage contextkit conversation stores."""


@cli.group("db")
def db_group() -> None:
    """Schema migrations and integrity checks."""


@db_group.command("upgrade")
@click.argument("url", required=False)
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(url: str | None, revision: str) -> None:
    """Create or upgrade the database at URL to the newest schema."""
    engine = db.create_engine(url)
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
def db_current(url: str | None) -> None:
    """Print the database's schema revision and the newest one."""
    engine = db.create_engine(url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    state = "up to date" if current == head else "needs: contextkit db upgrade"
    click.echo(f"current: {current or 'none'}  head: {head}  ({state})")


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
