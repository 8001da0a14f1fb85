"""Wire formats of sellers' payouts: the onboarding link, a store's payouts, its transfers."""

from marshmallow import Schema, fields, validate

from nexus.pagination import PageArgsSchema, page_of
from nexus.payouts.models import TransferStatus
from nexus.serialization import FlatSchema

TRANSFER_STATUSES = validate.OneOf([status.value for status in TransferStatus])


class OnboardingLinkSchema(Schema):
    url = fields.String(
        required=True,
        metadata={
            "description": "Stripe's onboarding page for the store's account: send the seller there now. "
            "Single use and short-lived; do not store it."
        },
    )
    expires_at = fields.DateTime(required=True, metadata={"description": "After this, ask for a new link."})


class PayoutSchema(Schema):
    """The account's latest payout to its bank."""

    id = fields.String(required=True, metadata={"example": "po_1NbQ2x2eZvKYlo2C"})
    status = fields.String(required=True, validate=validate.OneOf(["paid", "failed"]))
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    arrival_date = fields.DateTime(required=True, allow_none=True)
    failure_message = fields.String(required=True, allow_none=True, metadata={"description": "Why it failed."})


class PayoutAccountSchema(Schema):
    stripe_account_id = fields.String(required=True, metadata={"example": "acct_1NbQ2x2eZvKYlo2C"})
    charges_enabled = fields.Boolean(required=True)
    payouts_enabled = fields.Boolean(
        required=True, metadata={"description": "true: transfers are made to it (false: they wait as pending)."}
    )
    details_submitted = fields.Boolean(required=True)
    requirements_due = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "What Stripe still needs from the seller (its requirements.currently_due)."},
    )
    last_payout = fields.Nested(PayoutSchema, required=True, allow_none=True)


class PayoutsSchema(Schema):
    account = fields.Nested(
        PayoutAccountSchema, required=True, allow_none=True, metadata={"description": "null until onboarding starts."}
    )
    currency = fields.String(required=True)
    pending = fields.Integer(required=True, metadata={"description": "Due to the store, not yet transferred."})
    transferred = fields.Integer(required=True, metadata={"description": "Transferred to the store's account."})
    reversed = fields.Integer(required=True, metadata={"description": "Taken back of what was transferred (refunds)."})


class TransferSchema(FlatSchema):
    id = fields.Integer(required=True)
    store_id = fields.Integer(required=True)
    order_id = fields.Integer(required=True)
    amount = fields.Integer(
        required=True,
        metadata={"description": "The store's share (total - refunds - fee); once made, what was transferred."},
    )
    fee = fields.Integer(required=True, metadata={"description": "The platform's fee on what the buyer kept paid."})
    currency = fields.String(required=True)
    status = fields.String(required=True, validate=TRANSFER_STATUSES)
    stripe_transfer_id = fields.String(required=True, allow_none=True)
    amount_reversed = fields.Integer(
        required=True, metadata={"description": "Taken back by refunds after it was made."}
    )
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class TransferListArgsSchema(PageArgsSchema):
    status = fields.String(validate=TRANSFER_STATUSES)


TransferPageSchema = page_of(TransferSchema)
