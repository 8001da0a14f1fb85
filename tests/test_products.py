"""Products: listing them in a store, seeing and changing them, and who may do which."""

import pytest

from tests.factories import ProductFactory, StoreFactory


@pytest.fixture
def store(client, owner) -> dict:
    return client.post("/api/v1/stores", headers=owner.headers, json={"name": "Shop", "currency": "usd"}).get_json()


def add_product(client, who, store, **fields):
    return client.post(
        f"/api/v1/stores/{store['id']}/products",
        headers=who.headers,
        json={"name": "Teapot", "price": 2500, "stock": 3, **fields},
    )


def test_the_owner_lists_a_product_in_the_stores_currency(client, owner, store):
    response = add_product(client, owner, store, description="Cast iron", sku="TP-1")

    assert response.status_code == 201
    product = response.get_json()
    assert (product["store_id"], product["name"], product["description"], product["sku"]) == (
        store["id"],
        "Teapot",
        "Cast iron",
        "TP-1",
    )
    assert (product["price"], product["currency"], product["stock"], product["is_active"]) == (2500, "usd", 3, True)


def test_an_admin_may_list_a_product_in_any_store(client, admin, store):
    assert add_product(client, admin, store).status_code == 201


def test_others_may_not_list_products_in_a_store(client, stranger, store):
    assert (
        client.post(f"/api/v1/stores/{store['id']}/products", json={"name": "x", "price": 1, "stock": 1}).status_code
        == 401
    )
    assert add_product(client, stranger, store).status_code == 403


def test_a_sku_is_unique_within_its_store_only(client, owner, store):
    other_store = client.post("/api/v1/stores", headers=owner.headers, json={"name": "Other"}).get_json()
    add_product(client, owner, store, sku="TP-1")

    taken = add_product(client, owner, store, sku="TP-1")

    assert taken.status_code == 409
    assert "sku" in taken.get_json()["errors"]["json"]
    assert add_product(client, owner, other_store, sku="TP-1").status_code == 201
    assert add_product(client, owner, store, sku=None).status_code == 201
    assert add_product(client, owner, store).status_code == 201


@pytest.mark.parametrize(
    "fields",
    [
        {"price": 0},
        {"price": -5},
        {"price": 19.99},
        {"price": "1999"},
        {"price": 100_000_000},
        {"stock": -1},
        {"stock": 1.5},
        {"name": ""},
        {"currency": "eur"},
        {"sku": "has space"},
    ],
)
def test_bad_product_input_is_refused(client, owner, store, fields):
    response = add_product(client, owner, store, **fields)

    assert response.status_code == 422
    assert set(response.get_json()["errors"]["json"]) == set(fields)


@pytest.mark.parametrize("currency", ["kwd", "bhd", "jod", "omr", "tnd"])
def test_a_price_in_a_three_decimal_currency_is_a_multiple_of_10(client, owner, currency):
    store = client.post("/api/v1/stores", headers=owner.headers, json={"name": "Dinar", "currency": currency})

    refused = add_product(client, owner, store.get_json(), price=1005)
    product = add_product(client, owner, store.get_json(), price=1010)

    assert refused.status_code == 422
    assert "multiple of 10" in refused.get_json()["errors"]["json"]["price"][0]
    assert product.status_code == 201
    patched = client.patch(f"/api/v1/products/{product.get_json()['id']}", headers=owner.headers, json={"price": 999})
    assert patched.status_code == 422
    assert "price" in patched.get_json()["errors"]["json"]
    assert client.get(f"/api/v1/products/{product.get_json()['id']}").get_json()["price"] == 1010


def test_a_price_in_a_two_or_zero_decimal_currency_is_any_whole_amount(client, owner, store):
    yen = client.post("/api/v1/stores", headers=owner.headers, json={"name": "Yen", "currency": "jpy"}).get_json()

    assert add_product(client, owner, store, price=1005).status_code == 201
    assert add_product(client, owner, yen, price=1005).status_code == 201


def test_an_active_product_is_public(client, owner, store):
    product = add_product(client, owner, store).get_json()

    response = client.get(f"/api/v1/products/{product['id']}")

    assert (response.status_code, response.get_json()) == (200, product)


def test_an_inactive_product_is_seen_only_by_its_owner_and_admins(client, owner, stranger, admin, store):
    product = add_product(client, owner, store, is_active=False).get_json()
    url = f"/api/v1/products/{product['id']}"

    assert client.get(url).status_code == 404
    assert client.get(url, headers=stranger.headers).status_code == 404
    assert client.get(url, headers=owner.headers).status_code == 200
    assert client.get(url, headers=admin.headers).status_code == 200


def test_products_of_an_inactive_store_are_hidden_from_the_public(client, owner, stranger, store):
    product = add_product(client, owner, store).get_json()
    client.patch(f"/api/v1/stores/{store['id']}", headers=owner.headers, json={"is_active": False})

    assert client.get(f"/api/v1/products/{product['id']}", headers=stranger.headers).status_code == 404
    assert client.get(f"/api/v1/products/{product['id']}", headers=owner.headers).status_code == 200
    assert client.get(f"/api/v1/stores/{store['id']}/products").status_code == 404


def test_the_owner_changes_a_product(client, owner, store):
    product = add_product(client, owner, store).get_json()

    response = client.patch(
        f"/api/v1/products/{product['id']}", headers=owner.headers, json={"price": 2700, "stock": 0, "sku": "NEW-1"}
    )

    assert response.status_code == 200
    assert (response.get_json()["price"], response.get_json()["stock"], response.get_json()["sku"]) == (
        2700,
        0,
        "NEW-1",
    )
    assert response.get_json()["updated_at"] >= product["updated_at"]


def test_a_product_shows_what_orders_hold_and_what_is_left_to_buy(client, teapot, order):
    product = client.get(f"/api/v1/products/{teapot.id}").get_json()

    assert (product["stock"], product["reserved"], product["available"]) == (4, 2, 2)


def test_counting_the_shelf_while_orders_wait_creates_no_stock(client, owner, buyer, teapot, order):
    counted = client.patch(f"/api/v1/products/{teapot.id}", headers=owner.headers, json={"stock": 4})
    client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)

    assert (counted.get_json()["stock"], counted.get_json()["reserved"], counted.get_json()["available"]) == (4, 2, 2)
    product = client.get(f"/api/v1/products/{teapot.id}").get_json()
    assert (product["stock"], product["reserved"], product["available"]) == (4, 0, 4)


def test_stock_below_what_orders_hold_is_a_409_saying_how_many(client, owner, teapot, order):
    url = f"/api/v1/products/{teapot.id}"

    refused = client.patch(url, headers=owner.headers, json={"stock": 1, "name": "Renamed"})
    emptied = client.patch(url, headers=owner.headers, json={"stock": 2})

    assert refused.status_code == 409
    assert "2 units" in refused.get_json()["message"]
    assert "stock" in refused.get_json()["errors"]["json"]
    assert (emptied.status_code, emptied.get_json()["available"], emptied.get_json()["name"]) == (200, 0, teapot.name)


def test_a_patch_to_a_taken_sku_is_a_conflict_and_changes_nothing(client, owner, store):
    add_product(client, owner, store, sku="A")
    product = add_product(client, owner, store, sku="B").get_json()

    response = client.patch(f"/api/v1/products/{product['id']}", headers=owner.headers, json={"sku": "A", "price": 1})

    assert response.status_code == 409
    assert client.get(f"/api/v1/products/{product['id']}").get_json() == product


def test_an_unknown_product_is_404_to_read_change_or_remove(client, owner, store):
    add_product(client, owner, store)
    url = "/api/v1/products/999999"

    for response in (
        client.get(url),
        client.get(url, headers=owner.headers),
        client.patch(url, headers=owner.headers, json={"price": 1}),
        client.delete(url, headers=owner.headers),
    ):
        assert response.status_code == 404, response.request.method
        assert response.get_json()["code"] == 404


def test_others_may_not_change_or_remove_a_product(client, owner, stranger, store):
    product = add_product(client, owner, store).get_json()
    hidden = add_product(client, owner, store, is_active=False).get_json()

    assert (
        client.patch(f"/api/v1/products/{product['id']}", headers=stranger.headers, json={"price": 1}).status_code
        == 403
    )
    assert client.delete(f"/api/v1/products/{product['id']}", headers=stranger.headers).status_code == 403
    assert (
        client.patch(f"/api/v1/products/{hidden['id']}", headers=stranger.headers, json={"price": 1}).status_code == 404
    )
    assert client.delete(f"/api/v1/products/{product['id']}").status_code == 401


@pytest.mark.parametrize("field", [{"currency": "eur"}, {"store_id": 2}, {"id": 5}])
def test_product_fields_outside_the_contract_cannot_be_patched(client, owner, store, field):
    product = add_product(client, owner, store).get_json()

    assert client.patch(f"/api/v1/products/{product['id']}", headers=owner.headers, json=field).status_code == 422


def test_delete_takes_a_product_off_sale(client, owner, store):
    product = add_product(client, owner, store).get_json()

    assert client.delete(f"/api/v1/products/{product['id']}", headers=owner.headers).status_code == 204
    assert client.get(f"/api/v1/products/{product['id']}").status_code == 404
    assert client.get(f"/api/v1/products/{product['id']}", headers=owner.headers).get_json()["is_active"] is False
    assert client.get("/api/v1/products").get_json()["items"] == []


def test_a_stores_product_list_shows_active_products_and_all_of_them_to_the_owner(
    client, owner, stranger, admin, store
):
    active = add_product(client, owner, store).get_json()
    hidden = add_product(client, owner, store, is_active=False).get_json()
    url = f"/api/v1/stores/{store['id']}/products"

    assert [p["id"] for p in client.get(url).get_json()["items"]] == [active["id"]]
    assert [p["id"] for p in client.get(url, headers=owner.headers).get_json()["items"]] == [active["id"]]
    everything = [hidden["id"], active["id"]]
    assert [
        p["id"] for p in client.get(f"{url}?include_inactive=true", headers=owner.headers).get_json()["items"]
    ] == everything
    assert [
        p["id"] for p in client.get(f"{url}?include_inactive=true", headers=admin.headers).get_json()["items"]
    ] == everything
    assert client.get(f"{url}?include_inactive=true", headers=stranger.headers).status_code == 403
    assert client.get(f"{url}?include_inactive=true").status_code == 403


def test_a_stores_product_list_filters_like_the_catalog(client, session):
    store = StoreFactory()
    cheap = ProductFactory(store=store, price=100)
    ProductFactory(store=store, price=900)
    ProductFactory(price=100)  # another store

    body = client.get(f"/api/v1/stores/{store.id}/products?max_price=500").get_json()

    assert [p["id"] for p in body["items"]] == [cheap.id]
