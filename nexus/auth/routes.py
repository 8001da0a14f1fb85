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
    @blp.doc(operationId="register")
    @blp.arguments(RegisterSchema())
    @blp.response(202, DetailSchema)
    @_code_sending
    def post(self, payload):
        """Sign up, or sign in again: email a one-time code.

        Anyone, no token. Creates the account if the address is new and emails a 6-digit code,
        valid for `OTP_TTL_SECONDS` (600); an existing account just gets a new sign-in code. The
        202 is the same either way and the email is sent by a background job, so the answer tells
        nothing about who has an account. `full_name` and `phone` take effect only when the code is
        verified. 429 (with `Retry-After`) past `OTP_RATE_LIMIT_PER_EMAIL` or `OTP_RATE_LIMIT_PER_IP`,
        budgets shared with `requestCode`.
        """
        service.register(**payload)
        return CODE_SENT


@blp.route("/otp/request")
class RequestCode(MethodView):
    @blp.doc(operationId="requestCode")
    @blp.arguments(CodeRequestSchema())
    @blp.response(202, DetailSchema)
    @_code_sending
    def post(self, payload):
        """Email a one-time code to an existing account.

        Anyone, no token. Emails a 6-digit code to the address if it belongs to an active user; a
        new code makes older ones useless. The 202 is the same whether or not the address has an
        account. 429 (with `Retry-After`) past the per-address or per-IP budget shared with `register`.
        """
        service.request_code(**payload)
        return CODE_SENT


@blp.route("/otp/verify")
class VerifyCode(MethodView):
    @blp.doc(operationId="verifyCode")
    @blp.arguments(CodeVerifySchema())
    @blp.response(200, SignInSchema)
    @documents_errors(401)
    def post(self, payload):
        """Trade a one-time code for an access and a refresh token.

        Anyone, no token. The right code answers the tokens and the user, and marks the address
        verified. A wrong, expired or used code, or an unknown address, is the same 401; after
        `OTP_MAX_ATTEMPTS` (5) wrong tries the code is dead even if the right one follows.
        """
        user = service.verify_code(**payload)
        return {**tokens.issue_tokens(user), "user": user}


@blp.route("/refresh")
class Refresh(MethodView):
    @blp.doc(operationId="refreshTokens")
    @login_required(refresh=True)
    @blp.response(200, TokensSchema)
    def post(self):
        """Trade the refresh token (as the Bearer token) for a new pair; the old one is spent.

        Send the refresh token, not the access token, as the Bearer token. Presenting a spent
        refresh token again is a 401 and, as it was probably stolen, revokes every refresh token of
        the user; within `JWT_REFRESH_REUSE_GRACE_SECONDS` (10) of its rotation it gets a fresh pair
        instead (two tabs refreshing at once).
        """
        return tokens.rotate_refresh_token(get_current_user(), get_jwt())


@blp.route("/logout")
class Logout(MethodView):
    @blp.doc(operationId="logout")
    @login_required()
    @blp.arguments(LogoutSchema(), required=False)
    @blp.response(204)
    def post(self, payload):
        """Revoke this access token, and the refresh token if it is given.

        Signed-in users. 204; from then on the access token, and the `refresh_token` of the body if
        one is sent, answer 401 on every instance. A refresh token that is not the caller's is a
        422 and revokes nothing.
        """
        tokens.sign_out(get_current_user(), get_jwt(), payload.get("refresh_token"))
