"""Stores: opening, seeing and changing them, and who may do which."""

import re

import pytest
from sqlalchemy import update

from nexus.users.models import User
from tests.factories import StoreFactory, UserFactory, shipping_address
from tests.pages import walk

STORES = "/api/v1/stores"


def open_store(client, who, **fields) -> dict:
    response = client.post(STORES, headers=who.headers, json={"name": "Corner Shop", **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_verified_user_opens_a_store_they_own(client, owner):
    response = client.post(
        STORES, headers=owner.headers, json={"name": " Corner Shop ", "description": "Tea and books"}
    )

    assert response.status_code == 201
    store = response.get_json()
    assert store["owner_id"] == owner.user["id"]
    assert (store["name"], store["slug"], store["description"], store["currency"], store["is_active"]) == (
        "Corner Shop",
        "corner-shop",
        "Tea and books",
        "aed",
        True,
    )
    assert set(store) == {
        "id",
        "owner_id",
        "name",
        "slug",
        "description",
        "currency",
        "is_active",
        "created_at",
        "updated_at",
    }


def test_opening_a_store_needs_a_token_and_a_verified_email(client, owner, session):
    assert client.post(STORES, json={"name": "Shop"}).status_code == 401
    session.execute(update(User).where(User.email == "owner@example.com").values(is_verified=False))

    response = client.post(STORES, headers=owner.headers, json={"name": "Shop"})

    assert response.status_code == 403
    assert "Verify your email" in response.get_json()["message"]


def test_slugs_are_unique_and_readable(client, owner, stranger):
    first = open_store(client, owner, name="Café Déjà Vu")
    second = open_store(client, stranger, name="cafe deja vu!")
    third = open_store(client, owner, name="CAFÉ déjà vu")
    symbols = open_store(client, owner, name="★★★")

    assert first["slug"] == "cafe-deja-vu"
    assert re.fullmatch(r"cafe-deja-vu-[a-z0-9]{5}", second["slug"]), second["slug"]
    assert re.fullmatch(r"cafe-deja-vu-[a-z0-9]{5}", third["slug"]), third["slug"]
    assert len({first["slug"], second["slug"], third["slug"]}) == 3
    assert symbols["slug"] == "store"


def test_arabic_and_cyrillic_names_give_readable_ascii_slugs(client, owner):
    assert open_store(client, owner, name="متجر الورد")["slug"] == "mtjr-lwrd"
    assert open_store(client, owner, name="Магазин цветов")["slug"] == "magazin-tsvetov"


def test_two_stores_of_one_name_get_distinct_slugs(client, owner, stranger):
    slugs = {open_store(client, who, name="Магазин")["slug"] for who in (owner, stranger, owner)}

    assert len(slugs) == 3
    assert all(slug.startswith("magazin") for slug in slugs)


def test_picking_a_slug_reads_no_slugs_of_its_prefix(client, owner, statements):
    open_store(client, owner, name="Corner Shop")
    statements.clear()

    open_store(client, owner, name="Corner Shop")

    sent = " ".join(sql for sql, _ in statements).lower()
    assert "like" not in sent
    assert not [sql for sql, _ in statements if sql.lstrip().lower().startswith("select") and "slug" in sql.lower()]


def test_currency_is_lowercase_iso_4217(client, owner):
    assert open_store(client, owner, currency="USD")["currency"] == "usd"

    response = client.post(STORES, headers=owner.headers, json={"name": "Shop", "currency": "xyz"})

    assert response.status_code == 422
    assert "currency" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("currency", ["cup", "irr", "kpw", "xau"])
def test_a_currency_stripe_cannot_charge_is_a_422(client, owner, currency):
    response = client.post(STORES, headers=owner.headers, json={"name": "Shop", "currency": currency})

    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["currency"] == ["Stripe cannot charge this currency."]


@pytest.mark.parametrize("currency", ["aed", "jpy", "kwd", "bhd", "eur"])
def test_currencies_stripe_charges_are_store_currencies(client, owner, currency):
    assert open_store(client, owner, currency=currency)["currency"] == currency


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 121}, {"name": "Shop", "owner_id": 1}, {"name": "Shop", "slug": "s"}]
)
def test_bad_store_input_is_refused(client, owner, body):
    assert client.post(STORES, headers=owner.headers, json=body).status_code == 422


def test_an_active_store_is_public(client, owner):
    store = open_store(client, owner)

    response = client.get(f"{STORES}/{store['id']}")

    assert (response.status_code, response.get_json()) == (200, store)


def test_an_inactive_store_is_seen_only_by_its_owner_and_admins(client, owner, stranger, admin):
    store = open_store(client, owner)
    client.patch(f"{STORES}/{store['id']}", headers=owner.headers, json={"is_active": False})

    assert client.get(f"{STORES}/{store['id']}").status_code == 404
    assert client.get(f"{STORES}/{store['id']}", headers=stranger.headers).status_code == 404
    assert client.get(f"{STORES}/{store['id']}", headers=owner.headers).get_json()["is_active"] is False
    assert client.get(f"{STORES}/{store['id']}", headers=admin.headers).status_code == 200


def test_an_unknown_store_is_404(client):
    assert client.get(f"{STORES}/999999").status_code == 404


def test_the_owner_and_admins_change_a_store(client, owner, admin):
    store = open_store(client, owner)

    renamed = client.patch(
        f"{STORES}/{store['id']}", headers=owner.headers, json={"name": "Renamed", "description": "New"}
    )
    closed = client.patch(f"{STORES}/{store['id']}", headers=admin.headers, json={"is_active": False})

    assert renamed.status_code == 200
    assert (renamed.get_json()["name"], renamed.get_json()["slug"]) == ("Renamed", "corner-shop")
    assert closed.get_json()["is_active"] is False


def test_others_may_not_change_a_store(client, owner, stranger):
    store = open_store(client, owner)

    assert client.patch(f"{STORES}/{store['id']}", json={"name": "Mine"}).status_code == 401
    assert client.patch(f"{STORES}/{store['id']}", headers=stranger.headers, json={"name": "Mine"}).status_code == 403
    client.patch(f"{STORES}/{store['id']}", headers=owner.headers, json={"is_active": False})
    assert client.patch(f"{STORES}/{store['id']}", headers=stranger.headers, json={"name": "Mine"}).status_code == 404


@pytest.mark.parametrize("field", [{"currency": "usd"}, {"slug": "x"}, {"owner_id": 2}])
def test_store_fields_outside_the_contract_cannot_be_patched(client, owner, field):
    store = open_store(client, owner)

    assert client.patch(f"{STORES}/{store['id']}", headers=owner.headers, json=field).status_code == 422


def test_the_store_list_shows_active_stores_newest_first(client, session):
    older, newer = StoreFactory(name="Older"), StoreFactory(name="Newer")
    StoreFactory(name="Closed", is_active=False)

    body = client.get(STORES).get_json()

    assert [store["id"] for store in body["items"]] == [newer.id, older.id]
    assert body["next_cursor"] is None


def test_the_store_list_searches_names_case_insensitively_and_literally(client, session):
    owner = UserFactory()
    tea = StoreFactory(owner=owner, name="Tea House")
    StoreFactory(owner=owner, name="Coffee Corner")
    percent = StoreFactory(owner=owner, name="100% Cotton")

    assert [s["id"] for s in client.get(f"{STORES}?q=tea").get_json()["items"]] == [tea.id]
    assert [s["id"] for s in client.get(f"{STORES}?q=HOUSE+tea").get_json()["items"]] == [tea.id]
    assert [s["id"] for s in client.get(f"{STORES}?q=00%25").get_json()["items"]] == [percent.id]
    assert client.get(f"{STORES}?q=_").get_json()["items"] == []


def test_the_store_list_finds_a_short_word_at_the_start_of_a_word(client, session):
    owner = UserFactory()
    tv = StoreFactory(owner=owner, name="TV House")
    tvos = StoreFactory(owner=owner, name="Apps for tvOS")
    StoreFactory(owner=owner, name="HDTV Corner")

    assert [s["id"] for s in client.get(f"{STORES}?q=tv").get_json()["items"]] == [tvos.id, tv.id]
    assert [s["id"] for s in client.get(f"{STORES}?q=T+house").get_json()["items"]] == [tv.id]


def test_the_store_list_pages_through_every_store_once(client, session):
    stores = [StoreFactory() for _ in range(7)]

    seen = [store["id"] for store in walk(client, STORES, limit=3)]

    assert seen == sorted((s.id for s in stores), reverse=True)


def set_active(session, user_id: int, active: bool) -> None:
    session.execute(update(User).where(User.id == user_id).values(is_active=active))
    session.commit()


def test_a_deactivated_sellers_stores_are_off_sale_until_reactivated(client, owner, buyer, admin, teapot, session):
    store_id, product_id = teapot.store_id, teapot.id
    public = [
        "/api/v1/products",
        STORES,
        f"{STORES}/{store_id}",
        f"{STORES}/{store_id}/products",
        f"/api/v1/products/{product_id}",
    ]
    order = {"items": [{"product_id": product_id, "quantity": 1}], "shipping_address": shipping_address()}
    set_active(session, owner.user["id"], False)

    assert client.get("/api/v1/products").get_json()["items"] == []
    assert client.get(STORES).get_json()["items"] == []
    for url in public[2:]:
        assert client.get(url).status_code == 404, url
        assert client.get(url, headers=buyer.headers).status_code == 404, url
        assert client.get(url, headers=owner.headers).status_code != 200, url
        assert client.get(url, headers=admin.headers).status_code == 200, url
    refused = client.post("/api/v1/orders", headers=buyer.headers, json=order)
    assert refused.status_code == 422
    assert "Not for sale" in refused.get_json()["message"]

    set_active(session, owner.user["id"], True)

    assert [item["id"] for item in client.get("/api/v1/products").get_json()["items"]] == [product_id]
    assert [item["id"] for item in client.get(STORES).get_json()["items"]] == [store_id]
    for url in public[2:]:
        assert client.get(url).status_code == 200, url
    assert client.post("/api/v1/orders", headers=buyer.headers, json=order).status_code == 201


MY_STORES = "/api/v1/profile/me/stores"


def test_my_stores_lists_the_callers_stores_inactive_included_newest_first_in_pages(client, owner, stranger):
    mine = [open_store(client, owner, name=f"Mine {n}") for n in range(5)]
    open_store(client, stranger, name="Theirs")
    client.patch(f"{STORES}/{mine[1]['id']}", headers=owner.headers, json={"is_active": False})

    first = client.get(MY_STORES, headers=owner.headers, query_string={"limit": 3}).get_json()
    rest = client.get(
        MY_STORES, headers=owner.headers, query_string={"limit": 3, "cursor": first["next_cursor"]}
    ).get_json()

    assert [s["id"] for s in first["items"] + rest["items"]] == [s["id"] for s in reversed(mine)]
    assert [s["is_active"] for s in first["items"] + rest["items"]] == [True, True, True, False, True]
    assert rest["next_cursor"] is None
    assert client.get(MY_STORES).status_code == 401


def test_the_store_list_finds_one_store_by_its_slug_if_on_sale(client, owner):
    shop = open_store(client, owner, name="Corner Shop")
    open_store(client, owner, name="Corner Shop Two")
    closed = open_store(client, owner, name="Closed Shop")
    client.patch(f"{STORES}/{closed['id']}", headers=owner.headers, json={"is_active": False})

    assert client.get(STORES, query_string={"slug": "corner-shop"}).get_json()["items"] == [shop]
    assert client.get(STORES, query_string={"slug": "closed-shop"}).get_json()["items"] == []
    assert client.get(STORES, query_string={"slug": "nobody"}).get_json()["items"] == []
