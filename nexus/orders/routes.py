"""`/api/v1/orders` and `/api/v1/stores/{id}/orders`: place orders, follow and move them."""

from flask import current_app
from flask.views import MethodView
from flask_jwt_extended import get_current_user, get_jwt_identity

from nexus.extensions import limiter
from nexus.openapi import Blueprint, documents_errors
from nexus.orders import service
from nexus.orders.models import OrderStatus
from nexus.orders.schemas import (
    IdempotencyHeaderSchema,
    OrderCreateSchema,
    OrderListArgsSchema,
    OrderPageSchema,
    OrderSchema,
    OrderStatusChangeSchema,
)
from nexus.stores.service import get_store_for
from nexus.users.permissions import login_required

blp = Blueprint("orders", __name__, url_prefix="/api/v1", description="Orders and their lifecycle.")

REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the order an earlier request placed.",
        "schema": {"type": "string"},
    }
}


# Each user's own budget for placing orders (the token's user: login_required runs first).
placing_limit = limiter.limit(
    lambda: current_app.config["ORDER_RATE_LIMIT_PER_USER"], key_func=get_jwt_identity, scope="orders-per-user"
)


@blp.route("/orders")
class Orders(MethodView):
    @login_required(verified=True)
    @blp.arguments(OrderCreateSchema())
    @blp.arguments(IdempotencyHeaderSchema(), location="headers")
    @blp.response(201, OrderSchema, headers=REPLAYED)
    @documents_errors(409, 429)
    @placing_limit
    def post(self, order, headers):
        """Place an order: stock is reserved until it is paid, cancelled or expires."""
        placed, replayed = service.place_order(get_current_user(), **order, **headers)
        return (placed, 201, {"Idempotent-Replayed": "true"}) if replayed else placed

    @login_required()
    @blp.arguments(OrderListArgsSchema(), location="query")
    @blp.response(200, OrderPageSchema)
    def get(self, args):
        """Your orders as a buyer, newest first."""
        return service.list_orders(buyer_id=get_current_user().id, **args)


@blp.route("/orders/<id:order_id>")
class OrderById(MethodView):
    @login_required()
    @blp.response(200, OrderSchema)
    @documents_errors(404)
    def get(self, order_id):
        """An order you bought, or one of your store's (admins see all)."""
        return service.get_order_for(get_current_user(), order_id)[0]


@blp.route("/orders/<id:order_id>/status")
class OrderStatusChange(MethodView):
    @login_required()
    @blp.arguments(OrderStatusChangeSchema())
    @blp.response(200, OrderSchema)
    @documents_errors(403, 404, 409)
    def post(self, change, order_id):
        """Move a paid order on (store owner, admin): fulfilled, then shipped, then delivered."""
        user = get_current_user()
        order, roles = service.get_order_for(user, order_id)
        return service.move(order, OrderStatus(change["status"]), roles, actor=user)


@blp.route("/stores/<id:store_id>/orders")
class StoreOrders(MethodView):
    @login_required()
    @blp.arguments(OrderListArgsSchema(), location="query")
    @blp.response(200, OrderPageSchema)
    @documents_errors(403, 404)
    def get(self, args, store_id):
        """A store's orders, newest first (its owner, admins)."""
        store = get_store_for(get_current_user(), store_id, manage=True)
        return service.list_orders(store_id=store.id, **args)
