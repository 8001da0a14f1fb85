"""The Flask extensions, created unbound; `create_app()` binds them to an app."""

import smtplib
import time
from types import TracebackType
from typing import ClassVar

import flask_mail
import flask_smorest
import limits.storage
from flask import Flask, current_app
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Named constraints, so migrations can drop and alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class _TimedConnection(flask_mail.Connection):
    """An SMTP connection whose every wait on the server (connecting, each answer) gives up
    after MAIL_TIMEOUT seconds. A failed one is closed, not QUIT: that would wait again."""

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        smtp = smtplib.SMTP_SSL if state.use_ssl else smtplib.SMTP
        host = smtp(state.server, state.port, timeout=state.timeout)  # a greeting never sent: raises
        try:
            host.set_debuglevel(int(state.debug))
            if state.use_tls:
                host.starttls()
            if state.username and state.password:
                host.login(state.username, state.password)
        except BaseException:
            host.close()
            raise
        return host

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.host is not None and exc_type is not None:
            self.host.close()
        else:
            super().__exit__(exc_type, exc_value, tb)


class Mail(flask_mail.Mail):
    """Flask-Mail with a time limit: 0.10 opens smtplib connections with none, so a mail server
    that accepts and never answers would hold the sending request forever."""

    def init_mail(self, config, debug: bool | int = False, testing: bool = False):
        state = super().init_mail(config, debug, testing)
        state.timeout = config.get("MAIL_TIMEOUT", 10)
        return state

    def connect(self) -> flask_mail.Connection:
        return _TimedConnection(current_app.extensions["mail"])


class Api(flask_smorest.Api):
    """flask-smorest's Api without its page-number pagination header and schema: our lists are
    keyset-paginated in the body (`items`, `next_cursor`), so the document would carry an unused
    `PaginationMetadata` component that client generators turn into a type nobody can use."""

    def _register_pagination_header(self) -> None:
        pass


# Objects stay readable after their request commits: the answer is written from them right away,
# and expiring them would read every row back (two more queries per order placed).
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION), session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()
mail = Mail()
cors = CORS()
api = Api()


class MemoryStorage(limits.storage.MemoryStorage):
    """limits' `memory://` storage (the default RATELIMIT_STORAGE_URI), without a thread a hit.

    limits drops expired counters on a thread it starts 10 ms after a hit, and starts another
    once that one has ended: under steady traffic a new thread every 10 ms in every process,
    which cost a catalog page 80 us of CPU, a tenth of it (bench at 1,000,000 products, sync
    workers: 1,726 -> 1,910 req/s). A counter read after its window counts as zero anyway
    (`get`); what the thread did besides, forgetting counters nobody reads again (clients gone),
    is done here in line, at most once every SWEEP_SECONDS, for the fixed-window counters Nexus
    uses (Flask-Limiter's default strategy).

    Declaring the scheme makes `memory://` build this class. It has its parent's name so that
    `__schedule_expiry` below takes the place of the parent's private one (Python mangles both
    to `_MemoryStorage__schedule_expiry`), which every hit calls.
    """

    STORAGE_SCHEME: ClassVar[list[str]] = ["memory"]
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        self._swept_at = time.monotonic()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def __schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self._swept_at >= self.SWEEP_SECONDS:
            self._swept_at = now
            self._forget_expired()

    def _forget_expired(self) -> None:
        """Drop the counters past their window, each under its key's lock (a hit that starts a
        new window at the same moment keeps it). limits keeps expiries in wall-clock time."""
        now = time.time()
        for key, expires_at in list(self.expirations.items()):  # a copy: other threads count on
            if expires_at > now:
                continue
            with self.locks[key]:
                if self.expirations.get(key, now + 1) <= now:
                    self.storage.pop(key, None)
                    self.expirations.pop(key, None)
                    self.locks.pop(key, None)


# Only a 429 says anything of a budget (`Retry-After`, and the wait in words: nexus.errors).
# Flask-Limiter's X-RateLimit-* headers on every other answer would read the window back from
# the storage after each hit: two more Redis round trips per catalog page in production, and
# a Retry-After on answers that are not refusals, which the contract forbids.
limiter = Limiter(key_func=get_remote_address, headers_enabled=False)


def init_limiter(app: Flask) -> None:
    """Flask-Limiter, checking each limit once, in its view.

    It checks a request twice: before it runs, for application-wide, default and blueprint
    limits, and again in each limited view, for that view's own. Every Nexus limit is a view's
    own (`limiter.limit`, `limiter.shared_limit` on sign-in codes, placing orders and the
    catalog's lists), so the first pass never finds one, and it costs every request (a catalog
    page a tenth of its Python time). It is taken out; a limit that would need it makes this
    fail at start instead of being ignored.
    """
    limiter.init_app(app)
    # A storage found away falls back to memory until it answers again (RATELIMIT_IN_MEMORY_
    # FALLBACK_ENABLED); the flag lives on the extension, which outlives apps: a new app's
    # storage starts out as present.
    limiter._storage_dead = False
    manager = limiter.limit_manager
    if manager.application_limits or manager.default_limits or manager._blueprint_limits:
        raise RuntimeError("Nexus rate limits are per view; a wider one needs Flask-Limiter's before-request pass")
    before = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in before:  # absent when RATELIMIT_ENABLED is off
        before.remove(limiter._check_request_limit)
