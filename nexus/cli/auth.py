"""`flask --app wsgi auth ...`: token housekeeping, run by Render's cron once a day."""

import click
from flask.cli import AppGroup

from nexus.auth.tokens import prune_revoked_tokens

auth = AppGroup("auth", help="Token housekeeping.")


@auth.command("prune-tokens")
def prune_tokens_command() -> None:
    """Delete the revoked-token rows whose tokens have expired: an expired token is refused
    anyway, so its row no longer decides anything."""
    click.echo(f"pruned {prune_revoked_tokens()} revoked tokens past their expiry")
