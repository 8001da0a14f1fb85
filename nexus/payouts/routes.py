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
    @blp.doc(operationId="startPayoutOnboarding")
    @login_required()
    @blp.response(200, OnboardingLinkSchema)
    @documents_errors(403, 404, 409, 502, 503)
    def post(self, store_id):
        """Set up your store's payouts: a link to Stripe's onboarding (the account opens on the first call).

        The store's owner only (admins get 403: payouts go to the owner's bank). The first call
        opens the store's Stripe Connect Express account; every call answers a fresh Account Link
        (`url`, `expires_at`) that returns to `FRONTEND_URL`. 503 when `STRIPE_SECRET_KEY` or
        `FRONTEND_URL` is not set; 502 when Stripe cannot be reached, 409 when it refuses.
        """
        return service.start_onboarding(get_current_user(), store_id)


@blp.route("/stores/<id:store_id>/payouts")
class StorePayouts(MethodView):
    @blp.doc(operationId="getStorePayouts")
    @login_required()
    @blp.response(200, PayoutsSchema)
    @documents_errors(403, 404)
    def get(self, store_id):
        """Your store's payout account and what is pending, transferred and reversed (owner, admins).

        The store's owner and admins (others 403). `account` is the connected account as Stripe last
        described it (null before onboarding); `pending` is due but not yet transferred (waiting for
        the account to take payouts), `transferred` made, `reversed` taken back by refunds since,
        all in the store's currency's minor units.
        """
        return service.payouts_of(get_current_user(), store_id)


@blp.route("/stores/<id:store_id>/transfers")
class StoreTransfers(MethodView):
    @blp.doc(operationId="listStoreTransfers")
    @login_required()
    @blp.arguments(TransferListArgsSchema(), location="query")
    @blp.response(200, TransferPageSchema)
    @documents_errors(403, 404)
    def get(self, args, store_id):
        """Your store's transfers, one per delivered order, newest first (owner, admins).

        The store's owner and admins (others 403). Each is the store's share of an order, its total
        less refunds less the platform's fee; `status` keeps one status (`pending`, `paid`,
        `partially_reversed`, `reversed`, `canceled`). Keyset-paginated.
        """
        return service.list_store_transfers(get_current_user(), store_id, **args)


@blp.route("/webhooks/stripe-connect")
class ConnectWebhook(MethodView):
    @blp.doc(operationId="receiveStripeConnectEvent")
    @blp.doc(**CONNECT_EVENT)
    @blp.response(200, WebhookAnswerSchema)
    @documents_errors(400, 500, 503)
    def post(self):
        """Stripe Connect's signed events of the stores' accounts (no token; the signature).

        For Stripe only. Signed with `STRIPE_CONNECT_WEBHOOK_SECRET` (missing, wrong or older than
        300 s: 400; not configured: 503) and stored once in the payment event audit:
        `account.updated` records what the account can do (once it takes payouts its waiting
        transfers are made), `transfer.reversed` a reversal, `payout.paid` and `payout.failed` the
        store's latest payout. A redelivery answers `duplicate: true`; a failure to apply a 500.
        """
        audit, duplicate = webhooks.receive(request.get_data(), request.headers.get("Stripe-Signature"))
        return {"received": True, "duplicate": duplicate, "outcome": audit.outcome}
