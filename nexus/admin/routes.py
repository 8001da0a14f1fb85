"""`/api/v1/admin`: what only admins may do."""

from flask.views import MethodView
from flask_smorest import Blueprint

from nexus.openapi import documents_errors
from nexus.payments import service as payments
from nexus.payments import webhooks
from nexus.payments.schemas import PaymentEventSchema, PaymentSchema, RefundSchema
from nexus.users.permissions import admin_required

blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin", description="Admins only.")


@blp.route("/payments/<int:payment_id>/refund")
class Refund(MethodView):
    @admin_required()
    @blp.arguments(RefundSchema(), required=False)
    @blp.response(200, PaymentSchema)
    @documents_errors(404, 409, 502, 503)
    def post(self, refund, payment_id):
        """Refund a payment through Stripe, in full or in part."""
        return payments.refund(payment_id, refund.get("amount"))


@blp.route("/payment-events/<int:event_id>/replay")
class ReplayEvent(MethodView):
    @admin_required()
    @blp.response(200, PaymentEventSchema)
    @documents_errors(404, 500)
    def post(self, event_id):
        """Apply a recorded Stripe event again (after a fix); a state already reached is not applied twice."""
        return webhooks.replay(event_id)
