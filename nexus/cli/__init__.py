"""`flask --app wsgi ...` commands."""

from flask import Flask

from nexus.cli.auth import auth
from nexus.cli.demo import demo
from nexus.cli.orders import orders
from nexus.cli.payments import payments
from nexus.cli.payouts import payouts
from nexus.cli.users import users
from nexus.cli.worker import worker_command


def register_commands(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(auth)
    app.cli.add_command(demo)
    app.cli.add_command(orders)
    app.cli.add_command(payments)
    app.cli.add_command(payouts)
    app.cli.add_command(worker_command)
