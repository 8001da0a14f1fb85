"""`/api/v1/profile/me`: read and edit your own account."""

from flask.views import MethodView
from flask_jwt_extended import get_current_user

from nexus.openapi import Blueprint
from nexus.pagination import PageArgsSchema
from nexus.profile.schemas import ProfileUpdateSchema
from nexus.stores import service as stores_service
from nexus.stores.schemas import StorePageSchema
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


@blp.route("/me/stores")
class MyStores(MethodView):
    @login_required()
    @blp.arguments(PageArgsSchema(), location="query")
    @blp.response(200, StorePageSchema)
    def get(self, args):
        """Your stores, inactive ones included, newest first."""
        return stores_service.list_my_stores(get_current_user(), **args)
