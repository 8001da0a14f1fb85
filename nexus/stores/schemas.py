"""Wire formats of stores, products and the catalog."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from nexus.fields import JsonBoolean, TrimmedString
from nexus.ids import Id
from nexus.money import MAX_AMOUNT, Amount, Currency
from nexus.pagination import PageArgsSchema, page_of
from nexus.serialization import FlatSchema

NAME = {"validate": validate.Length(min=1, max=120)}
DESCRIPTION = {"validate": validate.Length(max=5000)}
SKU = {
    "validate": validate.Regexp(
        r"^\s*[A-Za-z0-9][A-Za-z0-9._-]{0,63}\s*$", error="Letters, digits, '.', '_' and '-', at most 64."
    )
}
STOCK = {"strict": True, "validate": validate.Range(min=0, max=1_000_000_000)}
SEARCH = [validate.Length(min=1, max=100), validate.Regexp(r"^\s*\S+(\s+\S+){0,4}\s*$", error="At most 5 words.")]


class StoreSchema(FlatSchema):
    id = fields.Integer(required=True)
    owner_id = fields.Integer(required=True)
    name = fields.String(required=True)
    slug = fields.String(required=True)
    description = fields.String(required=True)
    currency = fields.String(required=True)
    is_active = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class StoreCreateSchema(Schema):
    name = TrimmedString(required=True, **NAME)
    description = TrimmedString(**DESCRIPTION)
    currency = Currency()


class StoreUpdateSchema(Schema):
    name = TrimmedString(**NAME)
    description = TrimmedString(**DESCRIPTION)
    is_active = JsonBoolean()


class StoreListArgsSchema(PageArgsSchema):
    q = TrimmedString(
        validate=SEARCH,
        metadata={
            "description": "Words the store's name holds (all of them), in any case: a word of three characters or "
            "more anywhere, a shorter one at the start of a word (`tv` finds 'TV House', not 'HDTV'). A word with no "
            "letter or digit matches nothing."
        },
    )
    slug = fields.String(
        validate=validate.Length(min=1, max=140),
        metadata={"description": "The slug of the one store to find (an empty page if no store on sale has it)."},
    )


class ProductSchema(FlatSchema):
    id = fields.Integer(required=True)
    store_id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    sku = fields.String(required=True, allow_none=True)
    price = fields.Integer(required=True, metadata={"description": "Minor units (1999 = 19.99)."})
    currency = fields.String(required=True)
    stock = fields.Integer(required=True, metadata={"description": "Units the store holds and has not shipped."})
    reserved = fields.Integer(
        required=True, metadata={"description": "Units held by orders waiting for payment, or paid and not shipped."}
    )
    available = fields.Integer(required=True, metadata={"description": "stock - reserved: what buyers can order."})
    is_active = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class ProductCreateSchema(Schema):
    name = TrimmedString(required=True, validate=validate.Length(min=1, max=200))
    description = TrimmedString(**DESCRIPTION)
    sku = TrimmedString(allow_none=True, **SKU)
    price = Amount(required=True, metadata={"description": "Minor units (1999 = 19.99), more than 0."})
    stock = fields.Integer(required=True, **STOCK)
    is_active = JsonBoolean()


class ProductUpdateSchema(Schema):
    name = TrimmedString(validate=validate.Length(min=1, max=200))
    description = TrimmedString(**DESCRIPTION)
    sku = TrimmedString(allow_none=True, **SKU)
    price = Amount()
    stock = fields.Integer(
        metadata={"description": "The units counted on the shelf; at least what orders hold (else a 409)."}, **STOCK
    )
    is_active = JsonBoolean()


class ProductListArgsSchema(PageArgsSchema):
    q = TrimmedString(
        validate=SEARCH,
        metadata={
            "description": "Words to find (all of them), each in the name or the description, in any case. A word of "
            "three characters or more matches anywhere (`pot` finds 'Teapot'); a shorter one matches the start of a "
            "word, at the start of the text or after a space (`tv` finds 'TV stand' and 'Remote for tvOS', not "
            "'HDTV'). A word with no letter or digit matches nothing."
        },
    )
    min_price = fields.Integer(validate=validate.Range(min=0, max=MAX_AMOUNT), metadata={"description": "Inclusive."})
    max_price = fields.Integer(validate=validate.Range(min=0, max=MAX_AMOUNT), metadata={"description": "Inclusive."})
    in_stock = fields.Boolean(
        metadata={"description": "true: only products with units available (stock - reserved > 0)."}
    )
    sort = fields.String(load_default="newest", validate=validate.OneOf(["newest", "price_asc", "price_desc"]))

    @validates_schema
    def _price_range(self, data, **kwargs) -> None:
        if data.get("min_price", 0) > data.get("max_price", MAX_AMOUNT):
            raise ValidationError("min_price is above max_price.", "min_price")


class CatalogArgsSchema(ProductListArgsSchema):
    store_id = Id(metadata={"description": "Only this store's products."})


class StoreProductsArgsSchema(ProductListArgsSchema):
    include_inactive = fields.Boolean(
        load_default=False, metadata={"description": "Also inactive products (the store's owner or an admin only)."}
    )


StorePageSchema = page_of(StoreSchema)
ProductPageSchema = page_of(ProductSchema)
