"""Wire formats of `/api/v1/profile/me`."""

from nexus.users.schemas import ProfileFieldsSchema


class ProfileUpdateSchema(ProfileFieldsSchema):
    """Only `full_name` and `phone`; anything else (role, email, is_active...) is refused with 422."""
