"""Wire formats of orders."""

from marshmallow import Schema, fields, post_load, validate

from nexus.countries import Country
from nexus.fields import TrimmedString
from nexus.ids import Id
from nexus.orders.models import OrderStatus
from nexus.pagination import PageArgsSchema, page_of
from nexus.serialization import FlatSchema

STATUS_NAMES = [status.value for status in OrderStatus]


class OrderLineSchema(Schema):
    product_id = Id(required=True, strict=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))


ONE_LINE = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="One line of text, without control characters.")
OPTIONAL = ("line2", "region", "postal_code", "phone")


def _text(min: int, max: int, **kwargs) -> TrimmedString:
    """A line of an address, `min` to `max` characters once trimmed."""
    return TrimmedString(validate=[validate.Length(min=min or None, max=max), ONE_LINE], **kwargs)


class ShippingAddressCreateSchema(Schema):
    """Where the goods go: required name, first line, city and country; the rest optional."""

    name = _text(1, 100, required=True, metadata={"description": "Who receives the parcel.", "example": "Ada Lovelace"})
    line1 = _text(1, 200, required=True, metadata={"example": "Marina Walk 12, Apt 804"})
    line2 = _text(0, 200, allow_none=True)
    city = _text(1, 100, required=True, metadata={"example": "Dubai"})
    region = _text(0, 100, allow_none=True, metadata={"description": "State, province, emirate or county."})
    postal_code = _text(0, 20, allow_none=True)
    country = Country(required=True, metadata={"description": "ISO 3166-1 alpha-2, answered in upper case."})
    phone = TrimmedString(
        allow_none=True,
        validate=validate.Regexp(r"^\s*\+?[0-9][0-9 ()-]{5,30}\s*$", error="Not a valid phone number."),
        metadata={"description": "For the courier.", "example": "+971 50 123 4567"},
    )

    @post_load
    def _every_key(self, address: dict, **kwargs) -> dict:
        """Every key present, in one order; an optional field left blank is null."""
        for name in OPTIONAL:
            address[name] = address.get(name) or None
        return {name: address[name] for name in self.fields}


class OrderCreateSchema(Schema):
    items = fields.List(
        fields.Nested(OrderLineSchema),
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "1 to 100 lines, all products of one store; lines of the same product are merged."},
    )
    note = TrimmedString(allow_none=True, validate=validate.Length(max=500))
    shipping_address = fields.Nested(ShippingAddressCreateSchema, required=True)


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


class ShippingAddressSchema(Schema):
    name = fields.String(required=True)
    line1 = fields.String(required=True)
    line2 = fields.String(required=True, allow_none=True)
    city = fields.String(required=True)
    region = fields.String(required=True, allow_none=True)
    postal_code = fields.String(required=True, allow_none=True)
    country = fields.String(required=True, metadata={"description": "ISO 3166-1 alpha-2, upper case."})
    phone = fields.String(required=True, allow_none=True)


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
    shipping_address = fields.Nested(
        ShippingAddressSchema,
        required=True,
        allow_none=True,
        metadata={"description": "As given when the order was placed; null for orders placed before addresses were."},
    )
    buyer_email = fields.Email(
        required=True,
        metadata={"description": "So the store can reach the buyer (only they, the owner and admins see orders)."},
    )
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
