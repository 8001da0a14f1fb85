"""The Flask extensions, created unbound; `create_app()` binds them to an app."""

from flask import request
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_mail import Mail
from flask_migrate import Migrate
from flask_smorest import Api
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

# Objects stay readable after their request commits: the answer is written from them right away,
# and expiring them would read every row back (two more queries per order placed).
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION), session_options={"expire_on_commit": False})
migrate = Migrate()
jwt = JWTManager()
mail = Mail()
cors = CORS()
api = Api()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
# Only these blueprints have rate limits (sign-in codes, placing orders, the catalog's lists):
# every other request skips Flask-Limiter's per-request bookkeeping. A filter exempts a request
# from every limit, so a limit added to another blueprint needs that blueprint here.
RATE_LIMITED_BLUEPRINTS = frozenset({"auth", "orders", "stores", "products"})


@limiter.request_filter
def _has_no_limits() -> bool:
    return request.blueprint not in RATE_LIMITED_BLUEPRINTS
