"""Shipping addresses: validated when an order is placed, kept with it, and shown with the buyer's
email to the only people who see the order (its buyer, its store's owner, admins)."""

import pytest
from sqlalchemy import update

from nexus.orders.models import Order
from tests.factories import shipping_address

ORDERS = "/api/v1/orders"
FULL = {
    "name": "  Ada Lovelace ",
    "line1": "Marina Walk 12",
    "line2": "Apartment 804",
    "city": "Dubai",
    "region": "Dubai",
    "postal_code": "00000",
    "country": "AE",
    "phone": "+971 50 123 4567",
}


def place(client, who, product, address=None, **headers):
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    if address is not None:
        body["shipping_address"] = address
    return client.post(ORDERS, headers={**who.headers, **headers}, json=body)


def address_errors(response) -> dict:
    assert response.status_code == 422, response.get_json()
    return response.get_json()["errors"]["json"]["shipping_address"]


def test_the_shipping_address_is_kept_with_the_order_trimmed(client, buyer, teapot):
    response = place(client, buyer, teapot, FULL)

    assert response.status_code == 201
    assert response.get_json()["shipping_address"] == {**FULL, "name": "Ada Lovelace"}


def test_optional_fields_left_out_or_blank_are_answered_null(client, buyer, teapot):
    response = place(client, buyer, teapot, shipping_address(line2="  ", phone=None))

    assert response.get_json()["shipping_address"] == {
        "name": "Ada Lovelace",
        "line1": "Marina Walk 12",
        "line2": None,
        "city": "Dubai",
        "region": None,
        "postal_code": None,
        "country": "AE",
        "phone": None,
    }


def test_a_lower_case_country_is_answered_upper_case(client, buyer, teapot):
    response = place(client, buyer, teapot, shipping_address(country=" gb "))

    assert (response.status_code, response.get_json()["shipping_address"]["country"]) == (201, "GB")


def test_an_order_without_a_shipping_address_is_a_422(client, buyer, teapot):
    response = place(client, buyer, teapot)

    assert response.status_code == 422
    assert "shipping_address" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("field", ["name", "line1", "city", "country"])
def test_an_address_missing_a_required_field_is_a_422(client, buyer, teapot, field):
    address = shipping_address()
    del address[field]

    assert field in address_errors(place(client, buyer, teapot, address))


@pytest.mark.parametrize("field", ["name", "line1", "city"])
def test_a_required_field_of_only_spaces_is_a_422(client, buyer, teapot, field):
    assert field in address_errors(place(client, buyer, teapot, shipping_address(**{field: "   "})))


@pytest.mark.parametrize("country", ["ZZ", "XK", "UAE", "A", "", "A1", "United Arab Emirates"])
def test_a_country_that_is_no_iso_3166_alpha_2_code_is_a_422(client, buyer, teapot, country):
    errors = address_errors(place(client, buyer, teapot, shipping_address(country=country)))

    assert errors["country"] == ["Not an ISO 3166-1 alpha-2 country code (such as AE or GB)."]


@pytest.mark.parametrize(
    ("field", "longest"),
    [("name", 100), ("line1", 200), ("line2", 200), ("city", 100), ("region", 100), ("postal_code", 20)],
)
def test_an_address_field_over_its_length_is_a_422(client, buyer, teapot, field, longest):
    assert field in address_errors(place(client, buyer, teapot, shipping_address(**{field: "x" * (longest + 1)})))
    assert place(client, buyer, teapot, shipping_address(**{field: "x" * longest})).status_code == 201


@pytest.mark.parametrize("phone", ["call me", "+1", "9" * 40])
def test_a_phone_that_is_no_phone_number_is_a_422(client, buyer, teapot, phone):
    assert "phone" in address_errors(place(client, buyer, teapot, shipping_address(phone=phone)))


def test_an_address_line_holding_a_line_break_is_a_422(client, buyer, teapot):
    assert "line1" in address_errors(place(client, buyer, teapot, shipping_address(line1="Marina Walk\n12")))


def test_an_unknown_address_field_is_a_422(client, buyer, teapot):
    assert "street" in address_errors(place(client, buyer, teapot, shipping_address(street="Marina Walk")))


def test_the_same_key_with_another_address_is_a_422(client, buyer, teapot):
    key = {"Idempotency-Key": "cart-9"}
    first = place(client, buyer, teapot, shipping_address(), **key)

    again = place(client, buyer, teapot, shipping_address(), **key)
    elsewhere = place(client, buyer, teapot, shipping_address(city="Abu Dhabi"), **key)

    assert (first.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    assert elsewhere.status_code == 422
    assert "Idempotency-Key" in elsewhere.get_json()["errors"]["headers"]


def test_the_address_and_the_buyers_email_show_to_the_buyer_the_owner_and_admins(client, buyer, owner, admin, teapot):
    placed = place(client, buyer, teapot, FULL).get_json()
    expected = {"shipping_address": {**FULL, "name": "Ada Lovelace"}, "buyer_email": "buyer@example.com"}
    seen = {
        "buyer's order": client.get(f"{ORDERS}/{placed['id']}", headers=buyer.headers),
        "owner's order": client.get(f"{ORDERS}/{placed['id']}", headers=owner.headers),
        "admin's order": client.get(f"{ORDERS}/{placed['id']}", headers=admin.headers),
        "buyer's list": client.get(ORDERS, headers=buyer.headers),
        "store's list": client.get(f"/api/v1/stores/{teapot.store_id}/orders", headers=owner.headers),
        "admin's list": client.get("/api/v1/admin/orders", headers=admin.headers),
    }

    assert {key: placed[key] for key in expected} == expected
    for where, response in seen.items():
        body = response.get_json()
        [order] = body["items"] if "next_cursor" in body else [body]  # a page, or one order
        assert {key: order[key] for key in expected} == expected, where


def test_an_order_placed_before_addresses_shows_a_null_address(client, buyer, order, session):
    session.execute(update(Order).where(Order.id == order["id"]).values(shipping_address=None))

    seen = client.get(f"{ORDERS}/{order['id']}", headers=buyer.headers).get_json()
    listed = client.get(ORDERS, headers=buyer.headers).get_json()["items"][0]

    assert seen["shipping_address"] is listed["shipping_address"] is None
    assert seen["buyer_email"] == listed["buyer_email"] == "buyer@example.com"


def test_the_openapi_document_says_what_an_address_takes(client):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    fields = schemas["ShippingAddressCreate"]["properties"]

    assert sorted(schemas["ShippingAddressCreate"]["required"]) == ["city", "country", "line1", "name"]
    assert {name: fields[name].get("maxLength") for name in ("name", "line1", "line2", "city", "postal_code")} == {
        "name": 100,
        "line1": 200,
        "line2": 200,
        "city": 100,
        "postal_code": 20,
    }
    assert {"AE", "GB", "US"} <= set(fields["country"]["enum"])
    assert "shipping_address" in schemas["OrderCreate"]["required"]
    # The answer's address: that schema or null (no "any object" a generated client would allow).
    answered = schemas["Order"]["properties"]["shipping_address"]
    assert (answered["allOf"], answered["nullable"]) == ([{"$ref": "#/components/schemas/ShippingAddress"}], True)
