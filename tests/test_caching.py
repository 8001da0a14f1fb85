"""HTTP caching of the public reads: an ETag on every 200, 304 for the same request with that ETag
while nothing changed, `Cache-Control: public, max-age=30` for anonymous callers and `private`
for answers that depend on who asks."""

import pytest

from nexus.stores.models import Product


def varies_by(response) -> set[str]:
    """Every name the answer's Vary headers list, in lower case."""
    return {name.strip().lower() for value in response.headers.getlist("Vary") for name in value.split(",")}


@pytest.fixture
def urls(teapot: Product) -> dict[str, str]:
    """One URL of each public read, about the owner's store and its teapot."""
    return {
        "catalog": "/api/v1/products",
        "product": f"/api/v1/products/{teapot.id}",
        "stores": "/api/v1/stores",
        "store": f"/api/v1/stores/{teapot.store_id}",
        "store products": f"/api/v1/stores/{teapot.store_id}/products",
    }


READS = ("catalog", "product", "stores", "store", "store products")


@pytest.mark.parametrize("read", READS)
def test_an_anonymous_read_carries_an_etag_and_is_publicly_cacheable(client, urls, read):
    response = client.get(urls[read])

    assert response.status_code == 200
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Cache-Control"] == "public, max-age=30"
    assert "Authorization" in response.headers["Vary"]


@pytest.mark.parametrize("read", READS)
def test_the_same_read_with_its_etag_answers_304_with_no_body(client, urls, read):
    etag = client.get(urls[read]).headers["ETag"]

    response = client.get(urls[read], headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "public, max-age=30"


@pytest.mark.parametrize("read", READS)
def test_a_public_read_varies_by_origin_and_only_a_cross_origin_call_gets_cors_headers(client, urls, read):
    """A cache must not hand the answer to a request without Origin (no CORS headers) to a
    browser's cross-origin call, which would refuse it."""
    plain = client.get(urls[read])
    cross = client.get(urls[read], headers={"Origin": "http://localhost:5173"})

    assert [name for name, _ in plain.headers if name.lower().startswith("access-control-")] == []
    assert cross.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    for answer in (plain, cross):
        assert {"authorization", "origin"} <= varies_by(answer)


@pytest.mark.parametrize("read", READS)
def test_a_changed_answer_has_a_new_etag_and_a_stale_one_gets_the_full_answer(client, owner, urls, teapot, read):
    stale = client.get(urls[read]).headers["ETag"]
    changed = client.patch(f"/api/v1/products/{teapot.id}", headers=owner.headers, json={"price": 1750})
    assert changed.status_code == 200
    if read in ("stores", "store"):  # a product's price is not in these: change the store itself
        renamed = client.patch(f"/api/v1/stores/{teapot.store_id}", headers=owner.headers, json={"name": "Renamed"})
        assert renamed.status_code == 200

    response = client.get(urls[read], headers={"If-None-Match": stale})

    assert response.status_code == 200
    assert response.headers["ETag"] != stale
    assert response.get_json()


@pytest.mark.parametrize("read", READS)
def test_a_signed_in_read_is_private(client, stranger, urls, read):
    response = client.get(urls[read], headers=stranger.headers)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private"
    assert "Authorization" in response.headers["Vary"]
    assert "ETag" in response.headers


def test_an_owners_inactive_products_are_private(client, owner, teapot):
    assert client.delete(f"/api/v1/products/{teapot.id}", headers=owner.headers).status_code == 204

    listed = client.get(f"/api/v1/stores/{teapot.store_id}/products?include_inactive=true", headers=owner.headers)
    shown = client.get(f"/api/v1/products/{teapot.id}", headers=owner.headers)

    assert [item["id"] for item in listed.get_json()["items"]] == [teapot.id]
    assert listed.headers["Cache-Control"] == "private"
    assert shown.status_code == 200 and shown.get_json()["is_active"] is False
    assert shown.headers["Cache-Control"] == "private"
    assert client.get(f"/api/v1/products/{teapot.id}").status_code == 404


def test_errors_carry_no_etag_and_no_cache_control(client):
    response = client.get("/api/v1/products/987654")

    assert response.status_code == 404
    assert "ETag" not in response.headers
    assert "Cache-Control" not in response.headers
