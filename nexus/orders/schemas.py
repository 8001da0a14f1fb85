"""Wire formats of orders."""

from marshmallow import Schema, fields, validate

from nexus.fields import TrimmedString
from nexus.ids import Id
from nexus.orders.models import OrderStatus
from nexus.pagination import PageArgsSchema, page_of
from nexus.serialization import FlatSchema

STATUS_NAMES = [status.value for status in OrderStatus]


class OrderLineSchema(Schema):
    product_id = Id(required=True, strict=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))


class OrderCreateSchema(Schema):
    items = fields.List(
        fields.Nested(OrderLineSchema),
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "1 to 100 lines, all products of one store; lines of the same product are merged."},
    )
    note = TrimmedString(allow_none=True, validate=validate.Length(max=500))


class IdempotencyHeaderSchema(Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(r"^[\x21-\x7e]{1,255}$", error="1 to 255 printable ASCII characters."),
        metadata={
            "description": "Makes placing the order safe to retry: the same key and body within 24 hours "
            "answer the original order (header Idempotent-Replayed: true)."
        },
    )


class OrderItemSchema(FlatSchema):
    product_id = fields.Integer(required=True)
    name = fields.String(required=True)
    unit_price = fields.Integer(required=True)
    quantity = fields.Integer(required=True)
    line_total = fields.Integer(required=True)


class OrderSchema(Schema):
    id = fields.Integer(required=True)
    buyer_id = fields.Integer(required=True)
    store_id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUS_NAMES))
    items = fields.Nested(OrderItemSchema, many=True, required=True)
    subtotal = fields.Integer(required=True)
    total = fields.Integer(required=True)
    currency = fields.String(required=True)
    note = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True, metadata={"description": "Unpaid by then, the order expires."})
    paid_at = fields.DateTime(required=True, allow_none=True)
    payment_status = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The status of the order's latest Payment; null before the buyer starts paying."},
    )


class OrderListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUS_NAMES))


class OrderStatusChangeSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["fulfilled", "shipped", "delivered"]))


OrderPageSchema = page_of(OrderSchema)
