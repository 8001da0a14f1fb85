"""`flask --app wsgi users ...`: account chores for operators."""

import click
from flask.cli import AppGroup
from marshmallow import ValidationError

from nexus.fields import NormalisedEmail
from nexus.users.service import create_admin

users = AppGroup("users", help="Manage user accounts.")


@users.command("create-admin")
@click.argument("email")
@click.option("--full-name", default=None, help="Name to show for the admin.")
def create_admin_command(email: str, full_name: str | None) -> None:
    """Create an admin with EMAIL, or promote that existing user (active and verified either way)."""
    try:
        email = NormalisedEmail().deserialize(email)
    except ValidationError as error:
        raise click.BadParameter(" ".join(error.messages), param_hint="EMAIL") from None
    user = create_admin(email=email, full_name=full_name)
    click.echo(f"{user.email} is an admin (user id {user.id}); sign in with a code sent to that address.")
