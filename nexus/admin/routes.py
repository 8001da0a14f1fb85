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
    @blp.doc(operationId="listUsers")
    @admin_required()
    @blp.arguments(UserListArgsSchema(), location="query")
    @blp.response(200, UserPageSchema)
    def get(self, args):
        """Users, newest first: search by email or name, filter by role and activity.

        Admins only (others 403). `q` matches part of an email or a name, `role` is `customer` or
        `admin`, `is_active` true or false; keyset-paginated.
        """
        return service.list_users(**args)


@blp.route("/users/<id:user_id>")
class UserById(MethodView):
    @blp.doc(operationId="getUser")
    @admin_required()
    @blp.response(200, UserSchema)
    @documents_errors(404)
    def get(self, user_id):
        """A user.

        Admins only (others 403); 404 if there is no such user.
        """
        return service.get_user(user_id)

    @blp.doc(operationId="updateUser")
    @admin_required()
    @blp.arguments(UserUpdateSchema(), required=False)
    @blp.response(200, UserSchema)
    @documents_errors(404)
    def patch(self, changes, user_id):
        """Change a user's role, or lock them out (at once) and let them back in.

        Admins only (others 403). `role` and `is_active` only. Deactivating takes effect on the
        user's next request and revokes every token they hold; reactivated, they sign in again. An
        admin cannot demote or deactivate themself (422). Recorded in the audit log.
        """
        return service.update_user(get_current_user(), user_id, changes)


@blp.route("/payments")
class Payments(MethodView):
    @blp.doc(operationId="listPayments")
    @admin_required()
    @blp.arguments(PaymentListArgsSchema(), location="query")
    @blp.response(200, PaymentPageSchema)
    def get(self, args):
        """Payments, newest first, by status, user or order.

        Admins only (others 403). Filters: `status`, `user_id` (the buyer), `order_id`;
        keyset-paginated. No answer but `startPayment`'s carries a client secret.
        """
        return service.list_payments(**args)


@blp.route("/payments/<id:payment_id>")
class PaymentById(MethodView):
    @blp.doc(operationId="getPayment")
    @admin_required()
    @blp.response(200, PaymentDetailSchema)
    @documents_errors(404)
    def get(self, payment_id):
        """A payment and the Stripe events recorded for it.

        Admins only (others 403); 404 if there is no such payment. `events` are the audit rows of
        the webhook deliveries and reconciliations that concerned it, oldest first, with their
        outcome.
        """
        return service.get_payment(payment_id)


@blp.route("/payments/<id:payment_id>/refund")
class Refund(MethodView):
    @blp.doc(operationId="refundPayment")
    @admin_required()
    @blp.arguments(RefundSchema(), required=False)
    @blp.response(200, PaymentSchema)
    @documents_errors(404, 409, 502, 503)
    def post(self, refund, payment_id):
        """Refund a payment through Stripe, in full or in part.

        Admins only (others 403). `amount` defaults to all that is left; more than that is a 422.
        Only a succeeded (or partly refunded) payment can be refunded, else 409. A full refund
        refunds the order; the store's transfer is lowered or reversed and the buyer is emailed.
        Stripe refusing is a 409 with its reason, after the payment is read back from Stripe;
        Stripe unreachable a 502; not configured a 503. Recorded in the audit log.
        """
        return service.refund(get_current_user(), payment_id, refund.get("amount"))


@blp.route("/orders")
class Orders(MethodView):
    @blp.doc(operationId="listAllOrders")
    @admin_required()
    @blp.arguments(AllOrdersArgsSchema(), location="query")
    @blp.response(200, OrderPageSchema)
    def get(self, args):
        """Every order, newest first, by status or store.

        Admins only (others 403). Filters: `status`, `store_id`; keyset-paginated.
        """
        return orders.list_orders(**args)


@blp.route("/transfers")
class Transfers(MethodView):
    @blp.doc(operationId="listAllTransfers")
    @admin_required()
    @blp.arguments(AllTransfersArgsSchema(), location="query")
    @blp.response(200, TransferPageSchema)
    def get(self, args):
        """Transfers to sellers, newest first, by status or store.

        Admins only (others 403). Every store's transfers (one per delivered order); filters:
        `status`, `store_id`; keyset-paginated.
        """
        return payouts.list_transfers(**args)


@blp.route("/payment-events")
class PaymentEvents(MethodView):
    @blp.doc(operationId="listPaymentEvents")
    @admin_required()
    @blp.arguments(PaymentEventListArgsSchema(), location="query")
    @blp.response(200, PaymentEventPageSchema)
    def get(self, args):
        """The Stripe webhook's trail, newest first, by event type or outcome.

        Admins only (others 403). One row per Stripe event received (or read back by `payments
        reconcile`), with its outcome (`applied`, `duplicate`, `ignored`, `anomaly`, `error`), its
        deliveries and processing time. Filters: `type`, `outcome`; keyset-paginated.
        """
        return service.list_payment_events(**args)


@blp.route("/payment-events/<id:event_id>/replay")
class ReplayEvent(MethodView):
    @blp.doc(operationId="replayPaymentEvent")
    @admin_required()
    @blp.response(200, PaymentEventSchema)
    @documents_errors(404, 500)
    def post(self, event_id):
        """Apply a recorded Stripe event again (after a fix); a state already reached is not applied twice.

        Admins only (others 403); 404 if there is no such event. Runs the stored event through the
        webhook's own path and answers its audit row with the new outcome; if applying fails again
        the failure is recorded and the answer is a 500. Recorded in the audit log.
        """
        return service.replay(get_current_user(), event_id)


@blp.route("/stats")
class Stats(MethodView):
    @blp.doc(operationId="getStats")
    @admin_required()
    @blp.response(200, StatsSchema)
    def get(self):
        """The marketplace's numbers: users, stores, products, orders by status, revenue by currency.

        Admins only (others 403). Counts of users, stores and products, orders counted by status,
        and revenue per currency: what succeeded payments took less what was refunded, in minor
        units.
        """
        return service.stats()


@blp.route("/audit-log")
class AuditLog(MethodView):
    @blp.doc(operationId="listAuditLog")
    @admin_required()
    @blp.arguments(PageArgsSchema(), location="query")
    @blp.response(200, AuditEntryPageSchema)
    def get(self, args):
        """What admins changed, newest first.

        Admins only (others 403). Every write an admin made, through the admin console or the
        ordinary endpoints (closing a store, repricing a product, cancelling an order): who, what,
        when, and the fields before and after. Keyset-paginated.
        """
        return service.list_audit_log(**args)


@blp.route("/jobs")
class Jobs(MethodView):
    @blp.doc(operationId="listJobs")
    @admin_required()
    @blp.arguments(JobListArgsSchema(), location="query")
    @blp.response(200, JobPageSchema)
    def get(self, args):
        """Background jobs (emails, reports), newest first; `status=failed`: those that gave up, with why.

        Admins only (others 403). The outbox's rows: each job's name, status (`pending`, `done`,
        `failed`), attempts and last error, without their payloads (a sign-in job's holds an email
        address). Keyset-paginated.
        """
        return service.list_jobs(**args)
