"""`/api/v1/profile/me`: read and edit your own account."""

from flask.views import MethodView
from flask_jwt_extended import get_current_user

from nexus.openapi import Blueprint
from nexus.profile.schemas import ProfileUpdateSchema
from nexus.users import service
from nexus.users.permissions import login_required
from nexus.users.schemas import UserSchema

blp = Blueprint("profile", __name__, url_prefix="/api/v1/profile", description="Your own account.")


@blp.route("/me")
class Me(MethodView):
    @login_required()
    @blp.response(200, UserSchema)
    def get(self):
        """Your account."""
        return get_current_user()

    @login_required()
    @blp.arguments(ProfileUpdateSchema(), required=False)
    @blp.response(200, UserSchema)
    def patch(self, changes):
        """Change your name or phone number."""
        return service.update_profile(get_current_user(), changes)
