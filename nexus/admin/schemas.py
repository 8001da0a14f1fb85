"""Wire formats of the admin console."""

from marshmallow import Schema, fields, validate

from nexus.fields import JsonBoolean, TrimmedString
from nexus.ids import Id
from nexus.orders.schemas import OrderListArgsSchema
from nexus.pagination import PageArgsSchema, page_of
from nexus.payments.models import EventOutcome, PaymentStatus
from nexus.payments.schemas import PaymentEventSchema, PaymentSchema
from nexus.payouts.schemas import TransferListArgsSchema
from nexus.serialization import FlatSchema
from nexus.users.models import Role
from nexus.users.schemas import UserSchema

ROLES = validate.OneOf([role.value for role in Role])


class UserListArgsSchema(PageArgsSchema):
    q = TrimmedString(validate=validate.Length(min=1, max=100), metadata={"description": "Part of an email or a name."})
    role = fields.String(validate=ROLES)
    is_active = fields.Boolean()


class UserUpdateSchema(Schema):
    role = fields.String(validate=ROLES)
    is_active = JsonBoolean(metadata={"description": "false locks the user out at once."})


class PaymentListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf([status.value for status in PaymentStatus]))
    user_id = Id()
    order_id = Id()


class PaymentDetailSchema(PaymentSchema):
    events = fields.Nested(PaymentEventSchema, many=True, required=True, metadata={"description": "Oldest first."})


class PaymentEventListArgsSchema(PageArgsSchema):
    type = fields.String(validate=validate.Length(min=1, max=100), metadata={"example": "payment_intent.succeeded"})
    outcome = fields.String(validate=validate.OneOf([outcome.value for outcome in EventOutcome]))


class JobListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(["pending", "done", "failed"]))


class JobSchema(FlatSchema):
    """A background job (a row of the outbox): what it is for, how it went."""

    id = fields.Integer(required=True)
    job = fields.String(required=True, metadata={"example": "auth.send_sign_in_code"})
    status = fields.String(required=True, validate=validate.OneOf(["pending", "done", "failed"]))
    attempts = fields.Integer(required=True)
    last_error = fields.String(required=True, allow_none=True)
    deadline = fields.DateTime(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    handed_over_at = fields.DateTime(required=True, allow_none=True)
    finished_at = fields.DateTime(required=True, allow_none=True)


class AllOrdersArgsSchema(OrderListArgsSchema):
    store_id = Id()


class AllTransfersArgsSchema(TransferListArgsSchema):
    store_id = Id()


class StatsSchema(Schema):
    users = fields.Integer(required=True)
    stores = fields.Integer(required=True)
    products = fields.Integer(required=True)
    orders_by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    revenue = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "Per currency, in minor units: payments taken, less refunds."},
    )


class AuditEntrySchema(Schema):
    id = fields.Integer(required=True)
    actor_id = fields.Integer(required=True)
    action = fields.String(required=True, metadata={"example": "user.update"})
    target_type = fields.String(required=True)
    target_id = fields.Integer(required=True)
    before = fields.Dict(required=True, allow_none=True)
    after = fields.Dict(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


UserPageSchema = page_of(UserSchema)
PaymentPageSchema = page_of(PaymentSchema)
PaymentEventPageSchema = page_of(PaymentEventSchema)
AuditEntryPageSchema = page_of(AuditEntrySchema)
JobPageSchema = page_of(JobSchema)
