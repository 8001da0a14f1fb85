"""Is the database answering? Asked in a thread with a deadline, so the check never hangs."""

import os
import threading

from flask import Flask, current_app
from sqlalchemy import text

from nexus.config import VERSION
from nexus.extensions import db

DATABASE_DEADLINE_SECONDS = 2.5  # the contract allows 3 s for the whole answer


def _ping(app: Flask, outcome: dict[str, bool]) -> None:
    try:
        with app.app_context(), db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        outcome["ok"] = True
    except Exception:  # any failure means "not ready"; the reason is in the driver's log
        outcome["ok"] = False


def database_is_up() -> bool:
    """True if `SELECT 1` comes back within the deadline."""
    outcome: dict[str, bool] = {}
    probe = threading.Thread(target=_ping, args=(current_app._get_current_object(), outcome), daemon=True)
    probe.start()
    probe.join(DATABASE_DEADLINE_SECONDS)
    return outcome.get("ok", False)


def version() -> str:
    """The release, plus the commit Render deployed when there is one."""
    commit = os.environ.get("RENDER_GIT_COMMIT", "")[:7]
    return f"{VERSION}+{commit}" if commit else VERSION
