"""Wire formats of the sign-in endpoints."""

from marshmallow import Schema, fields, validate

from nexus.fields import NormalisedEmail
from nexus.users.schemas import ProfileFieldsSchema, UserSchema

EMAIL = {"validate": validate.Length(max=254), "metadata": {"example": "ada@example.com"}}


class RegisterSchema(ProfileFieldsSchema):
    email = NormalisedEmail(required=True, **EMAIL)


class CodeRequestSchema(Schema):
    email = NormalisedEmail(required=True, **EMAIL)


class CodeVerifySchema(Schema):
    email = NormalisedEmail(required=True, **EMAIL)
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{6}$", error="The code is the 6 digits from the email."),
        metadata={"example": "123456"},
    )


class LogoutSchema(Schema):
    refresh_token = fields.String(
        validate=validate.Length(max=4096), metadata={"description": "Also revoke this refresh token."}
    )


class DetailSchema(Schema):
    detail = fields.String(required=True)


class TokensSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds the access token lives."})


class SignInSchema(TokensSchema):
    user = fields.Nested(UserSchema, required=True)
