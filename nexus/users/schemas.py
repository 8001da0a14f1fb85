"""The User wire format and the profile fields people may set themselves."""

from marshmallow import Schema, fields, validate

from nexus.fields import TrimmedString
from nexus.serialization import FlatSchema
from nexus.users.models import Role


class UserSchema(FlatSchema):
    id = fields.Integer(required=True)
    email = fields.Email(required=True)
    full_name = fields.String(required=True, allow_none=True)
    phone = fields.String(required=True, allow_none=True)
    role = fields.String(required=True, validate=validate.OneOf([role.value for role in Role]))
    is_active = fields.Boolean(required=True)
    is_verified = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class ProfileFieldsSchema(Schema):
    """What a person may say about themself: at sign-up and in `PATCH /profile/me`."""

    full_name = TrimmedString(allow_none=True, validate=validate.Length(min=1, max=120))
    phone = TrimmedString(
        allow_none=True,
        validate=validate.Regexp(r"^\s*\+?[0-9][0-9 ()-]{5,30}\s*$", error="Not a valid phone number."),
        metadata={"example": "+971 50 123 4567"},
    )
