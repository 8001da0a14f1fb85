"""`/api/v1/admin`: users, payments and their webhook trail, refunds, orders, the numbers."""

from flask.views import MethodView
from flask_jwt_extended import get_current_user

from nexus.admin import service
from nexus.admin.schemas import (
    AllOrdersArgsSchema,
    AllTransfersArgsSchema,
    AuditEntryPageSchema,
    JobListArgsSchema,
    JobPageSchema,
    PaymentDetailSchema,
    PaymentEventListArgsSchema,
    PaymentEventPageSchema,
    PaymentListArgsSchema,
    PaymentPageSchema,
    StatsSchema,
    UserListArgsSchema,
    UserPageSchema,
    UserUpdateSchema,
)
from nexus.openapi import Blueprint, documents_errors
from nexus.orders import service as orders
from nexus.orders.schemas import OrderPageSchema
from nexus.pagination import PageArgsSchema
from nexus.payments.schemas import PaymentEventSchema, PaymentSchema, RefundSchema
from nexus.payouts import service as payouts
from nexus.payouts.schemas import TransferPageSchema
from nexus.users.permissions import admin_required
from nexus.users.schemas import UserSchema

blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin", description="Admins only.")


@blp.route("/users")
class Users(MethodView):
    @admin_required()
    @blp.arguments(UserListArgsSchema(), location="query")
    @blp.response(200, UserPageSchema)
    def get(self, args):
        """Users, newest first: search by email or name, filter by role and activity."""
        return service.list_users(**args)


@blp.route("/users/<id:user_id>")
class UserById(MethodView):
    @admin_required()
    @blp.response(200, UserSchema)
    @documents_errors(404)
    def get(self, user_id):
        """A user."""
        return service.get_user(user_id)

    @admin_required()
    @blp.arguments(UserUpdateSchema(), required=False)
    @blp.response(200, UserSchema)
    @documents_errors(404)
    def patch(self, changes, user_id):
        """Change a user's role, or lock them out (at once) and let them back in."""
        return service.update_user(get_current_user(), user_id, changes)


@blp.route("/payments")
class Payments(MethodView):
    @admin_required()
    @blp.arguments(PaymentListArgsSchema(), location="query")
    @blp.response(200, PaymentPageSchema)
    def get(self, args):
        """Payments, newest first, by status, user or order."""
        return service.list_payments(**args)


@blp.route("/payments/<id:payment_id>")
class PaymentById(MethodView):
    @admin_required()
    @blp.response(200, PaymentDetailSchema)
    @documents_errors(404)
    def get(self, payment_id):
        """A payment and the Stripe events recorded for it."""
        return service.get_payment(payment_id)


@blp.route("/payments/<id:payment_id>/refund")
class Refund(MethodView):
    @admin_required()
    @blp.arguments(RefundSchema(), required=False)
    @blp.response(200, PaymentSchema)
    @documents_errors(404, 409, 502, 503)
    def post(self, refund, payment_id):
        """Refund a payment through Stripe, in full or in part."""
        return service.refund(get_current_user(), payment_id, refund.get("amount"))


@blp.route("/orders")
class Orders(MethodView):
    @admin_required()
    @blp.arguments(AllOrdersArgsSchema(), location="query")
    @blp.response(200, OrderPageSchema)
    def get(self, args):
        """Every order, newest first, by status or store."""
        return orders.list_orders(**args)


@blp.route("/transfers")
class Transfers(MethodView):
    @admin_required()
    @blp.arguments(AllTransfersArgsSchema(), location="query")
    @blp.response(200, TransferPageSchema)
    def get(self, args):
        """Transfers to sellers, newest first, by status or store."""
        return payouts.list_transfers(**args)


@blp.route("/payment-events")
class PaymentEvents(MethodView):
    @admin_required()
    @blp.arguments(PaymentEventListArgsSchema(), location="query")
    @blp.response(200, PaymentEventPageSchema)
    def get(self, args):
        """The Stripe webhook's trail, newest first, by event type or outcome."""
        return service.list_payment_events(**args)


@blp.route("/payment-events/<id:event_id>/replay")
class ReplayEvent(MethodView):
    @admin_required()
    @blp.response(200, PaymentEventSchema)
    @documents_errors(404, 500)
    def post(self, event_id):
        """Apply a recorded Stripe event again (after a fix); a state already reached is not applied twice."""
        return service.replay(get_current_user(), event_id)


@blp.route("/stats")
class Stats(MethodView):
    @admin_required()
    @blp.response(200, StatsSchema)
    def get(self):
        """The marketplace's numbers: users, stores, products, orders by status, revenue by currency."""
        return service.stats()


@blp.route("/audit-log")
class AuditLog(MethodView):
    @admin_required()
    @blp.arguments(PageArgsSchema(), location="query")
    @blp.response(200, AuditEntryPageSchema)
    def get(self, args):
        """What admins changed, newest first."""
        return service.list_audit_log(**args)


@blp.route("/jobs")
class Jobs(MethodView):
    @admin_required()
    @blp.arguments(JobListArgsSchema(), location="query")
    @blp.response(200, JobPageSchema)
    def get(self, args):
        """Background jobs (emails, reports), newest first; `status=failed`: those that gave up, with why."""
        return service.list_jobs(**args)
