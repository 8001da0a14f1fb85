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
    @blp.doc(operationId="startPayment")
    @login_required(verified=True)
    @blp.response(201, PaymentStartSchema)
    @blp.alt_response(200, schema=PaymentStartSchema, success=True, description="The open payment, again.")
    @documents_errors(404, 409, 502, 503)
    def post(self, order_id):
        """Pay for your order: start its Stripe payment, or get the one already open.

        The order's buyer only (the store's owner and admins get 403). Creates a Stripe
        PaymentIntent for the order's total (201), or answers the open one again (200), with the
        `client_secret` Stripe.js confirms the card with: it is in no other answer and never stored.
        After a declined card a new payment replaces the declined one. An order that is not
        `pending_payment` is a 409; Stripe not configured (`STRIPE_SECRET_KEY`) a 503; Stripe
        unreachable or failing a 502, and Stripe refusing a 409 with its reason, the order unchanged.
        """
        payment, client_secret, created = service.start_payment(get_current_user(), order_id)
        return {"payment": payment, "client_secret": client_secret}, 201 if created else 200


@blp.route("/orders/<id:order_id>/cancel")
class CancelOrder(MethodView):
    @blp.doc(operationId="cancelOrder")
    @login_required()
    @blp.response(200, OrderSchema)
    @documents_errors(404, 409, 502, 503)
    def post(self, order_id):
        """Cancel an unpaid order and its Stripe payment (buyer, store owner, admin); its stock goes back on sale.

        Only a `pending_payment` order (else 409); anyone but its buyer, the store's owner and
        admins gets 404. A payment that could still take money is cancelled at Stripe first, so
        nothing can be paid for a cancelled order: while it is processing the answer is a 409, and
        if Stripe cannot be reached a 502 with the order unchanged. The buyer is emailed when the
        store or an admin cancels.
        """
        return service.cancel_order(get_current_user(), order_id)


@blp.route("/webhooks/stripe")
class StripeWebhook(MethodView):
    @blp.doc(operationId="receiveStripeEvent")
    @blp.doc(**STRIPE_EVENT)
    @blp.response(200, WebhookAnswerSchema)
    @documents_errors(400, 500, 503)
    def post(self):
        """Stripe's signed events: they settle payments and their orders (no token; the signature).

        For Stripe only. The `Stripe-Signature` is checked with `STRIPE_WEBHOOK_SECRET` and a 300 s
        tolerance (missing, wrong or stale: 400; secret not configured: 503). Each event is stored
        once by its id and applied once: `payment_intent.succeeded` pays the order,
        `payment_intent.processing`, `payment_intent.payment_failed` and `payment_intent.canceled`
        move the payment, `charge.refunded` records refunds (a full one refunds the order). A
        redelivery answers `duplicate: true`; unknown types and payments are stored and ignored. If
        applying fails the answer is a 500, so that Stripe retries.
        """
        audit, duplicate = webhooks.receive(request.get_data(), request.headers.get("Stripe-Signature"))
        return {"received": True, "duplicate": duplicate, "outcome": audit.outcome}
