"""Alembic environment for Flask-Migrate: the app's engine and metadata."""

import logging

from alembic import context
from flask import current_app
from sqlalchemy import text

from nexus.database import UTCDateTime

config = context.config
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db
config.set_main_option("sqlalchemy.url", target_db.engine.url.render_as_string(hide_password=False).replace("%", "%%"))


def render_item(type_, obj, autogen_context):
    """Write our UTC column type as the plain SQLAlchemy type it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Indexes only Postgres can build (trigram search) are not expected on other databases."""
    postgres_only = type_ == "index" and obj.info.get("postgres_only", False)
    return not postgres_only or context.get_bind().dialect.name == "postgresql"


def skip_empty_autogenerate(context, revision, directives):
    """`flask db migrate` with no model changes writes no empty revision."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=target_db.metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    options = dict(current_app.extensions["migrate"].configure_args)
    options.setdefault("process_revision_directives", skip_empty_autogenerate)
    with target_db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_db.metadata,
            render_item=render_item,
            include_object=include_object,
            **options,  # Flask-Migrate's: compare_type, render_as_batch (SQLite cannot ALTER)
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":  # a migration may rewrite a big table
                connection.execute(text("SET LOCAL statement_timeout = 0"))
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
