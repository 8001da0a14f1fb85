"""The User wire format and the profile fields people may set themselves."""

from marshmallow import Schema, fields, validate

from nexus.pagination import page_of
from nexus.serialization import FlatSchema
from nexus.users.models import Role


class TrimmedString(fields.String):
    """A string with surrounding whitespace removed before it is validated. Its length limits hold
    for the text as sent too, and its patterns allow whitespace around: the OpenAPI document, which
    knows nothing of trimming, then says exactly what is taken."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        for validator in self.validators:
            if isinstance(validator, validate.Length):
                validator(text)
        return text.strip()


class JsonBoolean(fields.Boolean):
    """A JSON `true` or `false` in a body; not 0, "no" or "off", which marshmallow's Boolean takes
    (query strings, all text, keep that Boolean)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class NormalisedEmail(fields.Email):
    """An email address, compared and stored in lower case."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value.strip().lower() if isinstance(value, str) else value, attr, data, **kwargs)


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


UserPageSchema = page_of(UserSchema)
