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
    @blp.doc(operationId="placeOrder")
    @login_required(verified=True)
    @blp.arguments(OrderCreateSchema())
    @blp.arguments(IdempotencyHeaderSchema(), location="headers")
    @blp.response(201, OrderSchema, headers=REPLAYED)
    @documents_errors(409, 429)
    @placing_limit
    def post(self, order, headers):
        """Place an order: stock is reserved until it is paid, cancelled or expires.

        Users with a verified email address (others 403). All lines must be active products of one
        store on sale, not the buyer's own (else 422); prices are taken from the products now and
        the total computed here. Not enough available stock is a 409 naming the products, and so is
        a buyer already holding `ORDER_MAX_OPEN_PER_BUYER` (5) unpaid orders; a total Stripe cannot
        charge is a 422; 429 past `ORDER_RATE_LIMIT_PER_USER`. Answers the order in
        `pending_payment`, to be paid (`startPayment`) within `ORDER_PAYMENT_TIMEOUT_MINUTES` (30).
        With an `Idempotency-Key`, the same body again within 24 h answers the same order
        (`Idempotent-Replayed: true`); another body with that key is a 422, and the key while its
        first request is still running a 409.
        """
        placed, replayed = service.place_order(get_current_user(), **order, **headers)
        return (placed, 201, {"Idempotent-Replayed": "true"}) if replayed else placed

    @blp.doc(operationId="listMyOrders")
    @login_required()
    @blp.arguments(OrderListArgsSchema(), location="query")
    @blp.response(200, OrderPageSchema)
    def get(self, args):
        """Your orders as a buyer, newest first.

        The signed-in user's orders, with their lines, keyset-paginated; `status` keeps one status.
        A store's orders are at `listStoreOrders`.
        """
        return service.list_orders(buyer_id=get_current_user().id, **args)


@blp.route("/orders/<id:order_id>")
class OrderById(MethodView):
    @blp.doc(operationId="getOrder")
    @login_required()
    @blp.response(200, OrderSchema)
    @documents_errors(404)
    def get(self, order_id):
        """An order you bought, or one of your store's (admins see all).

        Its buyer, the store's owner and admins; anyone else gets a 404, so order ids reveal
        nothing. With its lines, shipping address, the buyer's email and `payment_status` (its
        latest payment's, or null).
        """
        return service.get_order_for(get_current_user(), order_id)[0]


@blp.route("/orders/<id:order_id>/status")
class OrderStatusChange(MethodView):
    @blp.doc(operationId="moveOrder")
    @login_required()
    @blp.arguments(OrderStatusChangeSchema())
    @blp.response(200, OrderSchema)
    @documents_errors(403, 404, 409)
    def post(self, change, order_id):
        """Move a paid order on (store owner, admin): fulfilled, then shipped, then delivered.

        One step at a time: `paid` to `fulfilled` (the goods leave: `stock` and `reserved` drop by
        the quantities), to `shipped`, to `delivered` (the store's payout for the order falls due).
        Any other move is a 409; the buyer gets 403, anyone else 404. The buyer is emailed when the
        order is shipped and when it is delivered.
        """
        user = get_current_user()
        order, roles = service.get_order_for(user, order_id)
        return service.move(order, OrderStatus(change["status"]), roles, actor=user)


@blp.route("/stores/<id:store_id>/orders")
class StoreOrders(MethodView):
    @blp.doc(operationId="listStoreOrders")
    @login_required()
    @blp.arguments(OrderListArgsSchema(), location="query")
    @blp.response(200, OrderPageSchema)
    @documents_errors(403, 404)
    def get(self, args, store_id):
        """A store's orders, newest first (its owner, admins).

        The store's owner and admins (others 403, or 404 for a store they may not see), with the
        buyers' emails and shipping addresses; `status` keeps one status, e.g. `paid` for the orders
        waiting to be sent. Keyset-paginated.
        """
        store = get_store_for(get_current_user(), store_id, manage=True)
        return service.list_orders(store_id=store.id, **args)
