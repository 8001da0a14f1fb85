"""Paying for an order (`POST /api/v1/orders/{id}/payment`), cancelling one with its payment
(`POST /api/v1/orders/{id}/cancel`), and Stripe's webhook (`POST /api/v1/webhooks/stripe`)."""

from flask import request
from flask.views import MethodView
from flask_jwt_extended import get_current_user

from nexus.openapi import Blueprint, documents_errors
from nexus.orders.schemas import OrderSchema
from nexus.payments import service, webhooks
from nexus.payments.schemas import PaymentStartSchema, WebhookAnswerSchema
from nexus.users.permissions import login_required

blp = Blueprint("payments", __name__, url_prefix="/api/v1", description="Card payments through Stripe.")

STRIPE_EVENT = {
    "requestBody": {
        "required": True,
        "description": "A Stripe event, exactly as Stripe signed it.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "parameters": [
        {"in": "header", "name": "Stripe-Signature", "required": True, "schema": {"type": "string"}},
    ],
}


@blp.route("/orders/<id:order_id>/payment")
class OrderPayment(MethodView):
    @login_required(verified=True)
    @blp.response(201, PaymentStartSchema)
    @blp.alt_response(200, schema=PaymentStartSchema, success=True, description="The open payment, again.")
    @documents_errors(404, 409, 502, 503)
    def post(self, order_id):
        """Pay for your order: start its Stripe payment, or get the one already open."""
        payment, client_secret, created = service.start_payment(get_current_user(), order_id)
        return {"payment": payment, "client_secret": client_secret}, 201 if created else 200


@blp.route("/orders/<id:order_id>/cancel")
class CancelOrder(MethodView):
    @login_required()
    @blp.response(200, OrderSchema)
    @documents_errors(404, 409, 502, 503)
    def post(self, order_id):
        """Cancel an unpaid order and its Stripe payment (buyer, store owner, admin); its stock goes back on sale."""
        return service.cancel_order(get_current_user(), order_id)


@blp.route("/webhooks/stripe")
class StripeWebhook(MethodView):
    @blp.doc(**STRIPE_EVENT)
    @blp.response(200, WebhookAnswerSchema)
    @documents_errors(400, 500, 503)
    def post(self):
        """Stripe's signed events: they settle payments and their orders (no token; the signature)."""
        audit, duplicate = webhooks.receive(request.get_data(), request.headers.get("Stripe-Signature"))
        return {"received": True, "duplicate": duplicate, "outcome": audit.outcome}
