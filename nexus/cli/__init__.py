"""`flask --app wsgi ...` commands."""

from flask import Flask

from nexus.cli.users import users


def register_commands(app: Flask) -> None:
    app.cli.add_command(users)
