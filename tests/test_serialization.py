"""Flat schemas and the orjson provider write exactly what marshmallow and Flask would."""

import json

import pytest
from marshmallow import Schema, fields
from sqlalchemy import select

from nexus.orders.schemas import OrderItemSchema
from nexus.payments.schemas import PaymentSchema
from nexus.stores.models import PRODUCT_ROW, Product
from nexus.stores.schemas import ProductSchema, StoreSchema
from nexus.users.schemas import UserSchema
from tests.factories import ProductFactory


def marshmallow_json(schema: Schema, obj, many: bool = False) -> object:
    """What plain marshmallow plus the stdlib encoder make of `obj`."""
    return json.loads(json.dumps(Schema.dump(schema, obj, many=many)))


def test_a_flat_dump_of_objects_and_rows_is_marshmallows(app, session):
    products = [ProductFactory(sku=None), ProductFactory()]
    rows = session.execute(select(*PRODUCT_ROW).order_by(Product.id)).all()
    schema = ProductSchema()

    with app.app_context():
        from_objects = json.loads(app.json.dumps(schema.dump(products, many=True)))
        from_rows = json.loads(app.json.dumps(schema.dump(rows, many=True)))
        one = json.loads(app.json.dumps(schema.dump(products[0])))

    assert from_objects == from_rows == marshmallow_json(schema, products, many=True)
    assert one == marshmallow_json(schema, products[0])
    assert from_objects[0]["created_at"].endswith("+00:00")


@pytest.mark.parametrize("schema", [ProductSchema, StoreSchema, UserSchema, PaymentSchema, OrderItemSchema])
def test_the_lists_schemas_are_flat(schema):
    assert schema()._flat


def test_a_flat_schema_with_a_computed_field_is_dumped_by_marshmallow(app, session):
    class Labelled(ProductSchema):
        label = fields.Method("make_label")

        def make_label(self, obj) -> str:
            return f"#{obj.id}"

    product = ProductFactory()

    with app.app_context():
        dumped = json.loads(app.json.dumps(Labelled().dump(product)))

    assert dumped == {**marshmallow_json(ProductSchema(), product), "label": f"#{product.id}"}
