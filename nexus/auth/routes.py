"""`/api/v1/auth`: ask for a code, trade it for tokens, refresh them, sign out."""

from flask import current_app, request
from flask.views import MethodView
from flask_jwt_extended import get_current_user, get_jwt
from flask_limiter.util import get_remote_address

from nexus.auth import service, tokens
from nexus.auth.schemas import (
    CodeRequestSchema,
    CodeVerifySchema,
    DetailSchema,
    LogoutSchema,
    RegisterSchema,
    SignInSchema,
    TokensSchema,
)
from nexus.extensions import limiter
from nexus.openapi import Blueprint, documents_errors
from nexus.users.permissions import login_required

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Passwordless sign-in and JWTs.")

# Identical whether or not the address has an account, so the answer reveals nothing.
CODE_SENT = {"detail": "If that address can sign in, a 6-digit code is on its way; it expires in a few minutes."}


def _email_in_body() -> str:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return email.strip().lower() if isinstance(email, str) else get_remote_address()


def _code_sending(view):
    """Register and otp/request share two budgets: one per email address and one per client IP."""
    per_email = limiter.shared_limit(
        lambda: current_app.config["OTP_RATE_LIMIT_PER_EMAIL"], scope="otp-email", key_func=_email_in_body
    )
    per_ip = limiter.shared_limit(lambda: current_app.config["OTP_RATE_LIMIT_PER_IP"], scope="otp-ip")
    return documents_errors(429, 503)(per_email(per_ip(view)))


@blp.route("/register")
class Register(MethodView):
    @blp.arguments(RegisterSchema())
    @blp.response(202, DetailSchema)
    @_code_sending
    def post(self, payload):
        """Sign up, or sign in again: email a one-time code."""
        service.register(**payload)
        return CODE_SENT


@blp.route("/otp/request")
class RequestCode(MethodView):
    @blp.arguments(CodeRequestSchema())
    @blp.response(202, DetailSchema)
    @_code_sending
    def post(self, payload):
        """Email a one-time code to an existing account."""
        service.request_code(**payload)
        return CODE_SENT


@blp.route("/otp/verify")
class VerifyCode(MethodView):
    @blp.arguments(CodeVerifySchema())
    @blp.response(200, SignInSchema)
    @documents_errors(401)
    def post(self, payload):
        """Trade a one-time code for an access and a refresh token."""
        user = service.verify_code(**payload)
        return {**tokens.issue_tokens(user), "user": user}


@blp.route("/refresh")
class Refresh(MethodView):
    @login_required(refresh=True)
    @blp.response(200, TokensSchema)
    def post(self):
        """Trade the refresh token (as the Bearer token) for a new pair; the old one is spent."""
        return tokens.rotate_refresh_token(get_current_user(), get_jwt())


@blp.route("/logout")
class Logout(MethodView):
    @login_required()
    @blp.arguments(LogoutSchema(), required=False)
    @blp.response(204)
    def post(self, payload):
        """Revoke this access token, and the refresh token if it is given."""
        tokens.sign_out(get_current_user(), get_jwt(), payload.get("refresh_token"))
