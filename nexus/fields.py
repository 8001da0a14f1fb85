"""Fields every wire format uses: text as people type it, JSON booleans, email addresses."""

from marshmallow import fields, validate


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
