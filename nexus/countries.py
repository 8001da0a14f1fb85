"""Countries as ISO 3166-1 alpha-2 codes (`AE`, `GB`), the one list shipping addresses are checked against.

The codes come from pycountry (pinned in requirements.txt), which packages Debian's iso-codes
data as the ISO 3166 Maintenance Agency publishes it: when a country is added or a code
withdrawn, a pinned upgrade brings the change, where a table copied into our code would
silently go stale. Only officially assigned codes count; user-assigned ones such as `XK` do not.
"""

import pycountry
from marshmallow import fields, validate

COUNTRY_CODES: frozenset[str] = frozenset(country.alpha_2 for country in pycountry.countries)
NOT_A_COUNTRY = "Not an ISO 3166-1 alpha-2 country code (such as AE or GB)."


class Country(fields.String):
    """A country as its ISO 3166-1 alpha-2 code; lower case is accepted and answered upper case."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("metadata", {}).setdefault("example", "AE")
        super().__init__(validate=validate.OneOf(sorted(COUNTRY_CODES), error=NOT_A_COUNTRY), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip().upper()


def country_name(code: str) -> str:
    """The country's common name (`AE` is United Arab Emirates), or the code if it is not known."""
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name
