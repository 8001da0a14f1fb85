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
    @blp.doc(operationId="getMyProfile")
    @login_required()
    @blp.response(200, UserSchema)
    def get(self):
        """Your account.

        The signed-in user as the database has them now: email, name, phone, role, whether the
        account is active and its address verified. 401 without a valid access token, or for a
        deactivated account.
        """
        return get_current_user()

    @blp.doc(operationId="updateMyProfile")
    @login_required()
    @blp.arguments(ProfileUpdateSchema(), required=False)
    @blp.response(200, UserSchema)
    def patch(self, changes):
        """Change your name or phone number.

        Only `full_name` and `phone` may be sent; any other field (`role`, `email`, `is_active`...)
        is a 422 and changes nothing. Answers the updated user.
        """
        return service.update_profile(get_current_user(), changes)


@blp.route("/me/stores")
class MyStores(MethodView):
    @blp.doc(operationId="listMyStores")
    @login_required()
    @blp.arguments(PageArgsSchema(), location="query")
    @blp.response(200, StorePageSchema)
    def get(self, args):
        """Your stores, inactive ones included, newest first.

        The stores the signed-in user owns, closed ones too (the public list shows only active
        stores), keyset-paginated with `limit` and `cursor`.
        """
        return stores_service.list_my_stores(get_current_user(), **args)
