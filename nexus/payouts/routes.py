"""Sellers' payouts: onboarding (`POST /api/v1/stores/{id}/payouts/onboarding`), a store's payouts
and transfers, and Stripe Connect's webhook (`POST /api/v1/webhooks/stripe-connect`)."""

from flask import request
from flask.views import MethodView
from flask_jwt_extended import get_current_user

from nexus.openapi import Blueprint, documents_errors
from nexus.payments.schemas import WebhookAnswerSchema
from nexus.payouts import service, webhooks
from nexus.payouts.schemas import OnboardingLinkSchema, PayoutsSchema, TransferListArgsSchema, TransferPageSchema
from nexus.users.permissions import login_required

blp = Blueprint("payouts", __name__, url_prefix="/api/v1", description="Sellers' payouts through Stripe Connect.")

CONNECT_EVENT = {
    "requestBody": {
        "required": True,
        "description": "An event of a connected account, exactly as Stripe signed it.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "parameters": [
        {"in": "header", "name": "Stripe-Signature", "required": True, "schema": {"type": "string"}},
    ],
}


@blp.route("/stores/<id:store_id>/payouts/onboarding")
class Onboarding(MethodView):
    @login_required()
    @blp.response(200, OnboardingLinkSchema)
    @documents_errors(403, 404, 409, 502, 503)
    def post(self, store_id):
        """Set up your store's payouts: a link to Stripe's onboarding (the account opens on the first call)."""
        return service.start_onboarding(get_current_user(), store_id)


@blp.route("/stores/<id:store_id>/payouts")
class StorePayouts(MethodView):
    @login_required()
    @blp.response(200, PayoutsSchema)
    @documents_errors(403, 404)
    def get(self, store_id):
        """Your store's payout account and what is pending, transferred and reversed (owner, admins)."""
        return service.payouts_of(get_current_user(), store_id)


@blp.route("/stores/<id:store_id>/transfers")
class StoreTransfers(MethodView):
    @login_required()
    @blp.arguments(TransferListArgsSchema(), location="query")
    @blp.response(200, TransferPageSchema)
    @documents_errors(403, 404)
    def get(self, args, store_id):
        """Your store's transfers, one per delivered order, newest first (owner, admins)."""
        return service.list_store_transfers(get_current_user(), store_id, **args)


@blp.route("/webhooks/stripe-connect")
class ConnectWebhook(MethodView):
    @blp.doc(**CONNECT_EVENT)
    @blp.response(200, WebhookAnswerSchema)
    @documents_errors(400, 500, 503)
    def post(self):
        """Stripe Connect's signed events of the stores' accounts (no token; the signature)."""
        audit, duplicate = webhooks.receive(request.get_data(), request.headers.get("Stripe-Signature"))
        return {"received": True, "duplicate": duplicate, "outcome": audit.outcome}
