"""`flask --app wsgi ...` commands."""

from flask import Flask

from nexus.cli.demo import demo
from nexus.cli.users import users


def register_commands(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(demo)
