"""`clipsweep token create|list|revoke`: API tokens, straight in the database, so the first admin
token needs no API. A token is printed once, alone on the last line, and never stored."""

from __future__ import annotations

import click

from service.cli.common import main, settings_or_exit
from service.cli.output import table
from service.errors import InvalidRequest, SetupError


def _factory():  # type: ignore[no-untyped-def]
    from service.db.open import open_database

    try:
        return open_database(settings_or_exit())
    except SetupError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def token() -> None:
    """API tokens: create one, list them, revoke one (on the server's database)."""


@token.command()
@click.option("--name", required=True, help="A name for people: who or what uses it.")
@click.option("--scopes", required=True, help="Comma-separated: read, write (submit, cancel), admin.")
@click.option("--expires", default=None, help="Lifetime such as 90d, 12h or 30m [default: never].")
def create(name: str, scopes: str, expires: str | None) -> None:
    """Create a token and print it once: it cannot be shown again."""
    from service.db.session import session_scope
    from service.tokens import create_token, expiry, parse_scopes

    engine, factory = _factory()
    try:
        with session_scope(factory) as session:
            created, secret = create_token(session, name, parse_scopes(scopes),
                                           expires_in=expiry(expires) if expires else None)
            until = f"expires {created.expires_at:%Y-%m-%d %H:%M} UTC" if created.expires_at else "does not expire"
            click.echo(f"token {created.name!r} with scopes {','.join(created.scopes)}; it {until}. "
                       "It is shown once; keep it secret:", err=True)
    except InvalidRequest as exc:
        raise click.ClickException("; ".join(e["msg"] for e in exc.errors)) from None
    finally:
        engine.dispose()
    click.echo(secret)


@token.command(name="list")
def list_() -> None:
    """List the tokens (never the tokens themselves: a prefix to recognize each by)."""
    from service.tokens import is_expired, list_tokens

    engine, factory = _factory()
    try:
        with factory() as session:
            tokens = list_tokens(session)
    finally:
        engine.dispose()

    def when(moment: object) -> str:
        return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"

    rows = [[t.name, t.prefix + "…", ",".join(t.scopes), when(t.created_at), when(t.expires_at), when(t.last_used_at),
             "revoked" if t.revoked_at else "expired" if is_expired(t) else "active"] for t in tokens]
    click.echo(table(["name", "token", "scopes", "created", "expires", "last used", "state"], rows))


@token.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke the token called NAME: it stops working at once."""
    from service.db.session import session_scope
    from service.tokens import revoke_token

    engine, factory = _factory()
    try:
        with session_scope(factory) as session:
            revoke_token(session, name)
    except InvalidRequest as exc:
        raise click.ClickException("; ".join(e["msg"] for e in exc.errors)) from None
    finally:
        engine.dispose()
    click.echo(f"token {name!r} revoked")
