"""Wire formats of payments and of Stripe's events as recorded."""

from marshmallow import Schema, fields, validate

from nexus.money import Amount
from nexus.payments.models import EventOutcome, PaymentStatus
from nexus.serialization import FlatSchema


class PaymentSchema(FlatSchema):
    id = fields.Integer(required=True)
    order_id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    provider = fields.String(required=True, validate=validate.OneOf(["stripe"]))
    provider_payment_id = fields.String(
        required=True, allow_none=True, metadata={"description": "Stripe's PaymentIntent id."}
    )
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf([status.value for status in PaymentStatus]))
    amount_refunded = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class PaymentStartSchema(Schema):
    payment = fields.Nested(PaymentSchema, required=True)
    client_secret = fields.String(
        required=True,
        metadata={"description": "For Stripe.js to confirm the payment in the browser; do not log or store it."},
    )


class WebhookAnswerSchema(Schema):
    received = fields.Boolean(required=True)
    duplicate = fields.Boolean(required=True, metadata={"description": "true: this event was already received."})
    outcome = fields.String(required=True, validate=validate.OneOf([outcome.value for outcome in EventOutcome]))


class PaymentEventSchema(Schema):
    id = fields.Integer(required=True)
    stripe_event_id = fields.String(required=True)
    type = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf(["webhook", "reconcile"]))
    payment_id = fields.Integer(required=True, allow_none=True)
    outcome = fields.String(required=True, validate=validate.OneOf([outcome.value for outcome in EventOutcome]))
    detail = fields.String(required=True, allow_none=True)
    deliveries = fields.Integer(required=True)
    replays = fields.Integer(required=True)
    processing_ms = fields.Float(required=True)
    received_at = fields.DateTime(required=True)
    processed_at = fields.DateTime(required=True)
    payload = fields.Dict(
        required=True, metadata={"description": "The event as Stripe sent it (or as read from Stripe)."}
    )


class RefundSchema(Schema):
    amount = Amount(metadata={"description": "Minor units; by default all that is left to refund."})
