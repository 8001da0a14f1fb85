"""The catalog: what it lists, its filters and sorts, and keyset paging that walks any listing
exactly once, in a fixed number of SQL statements whatever the page size."""

import pytest
from sqlalchemy import text

from nexus import database
from nexus.config import READS
from nexus.extensions import db
from nexus.stores.models import Product
from nexus.users.models import User
from tests.factories import ProductFactory, StoreFactory, shipping_address
from tests.pages import ids, walk

CATALOG = "/api/v1/products"
SORT_KEYS = {
    "newest": lambda p: -p["id"],
    "price_asc": lambda p: (p["price"], p["id"]),
    "price_desc": lambda p: (-p["price"], -p["id"]),
}


@pytest.fixture
def shelf(session) -> list[Product]:
    """Fourteen listed products over two stores, with repeated prices, plus unlisted ones."""
    tea, pots = StoreFactory(name="Tea"), StoreFactory(name="Pots")
    prices = [500, 300, 500, 100, 900, 300, 500, 700, 100, 300, 900, 500, 200, 500]
    listed = [ProductFactory(store=(tea, pots)[n % 2], price=price, stock=n % 3) for n, price in enumerate(prices)]
    ProductFactory(store=tea, is_active=False)
    ProductFactory(store=StoreFactory(is_active=False))
    return listed


def test_the_catalog_lists_active_products_of_active_stores_newest_first(client, shelf):
    body = client.get(CATALOG).get_json()

    assert [p["id"] for p in body["items"]] == sorted((p.id for p in shelf), reverse=True)
    assert body["next_cursor"] is None


def test_catalog_items_are_the_product_resource(client, shelf):
    item = client.get(CATALOG).get_json()["items"][0]

    assert item == client.get(f"{CATALOG}/{item['id']}").get_json()


@pytest.mark.parametrize("sort", SORT_KEYS)
@pytest.mark.parametrize("limit", [1, 3, 5, 14, 100])
def test_a_walk_visits_every_product_once_in_order(client, shelf, sort, limit):
    items = walk(client, CATALOG, limit=limit, sort=sort)

    assert len(items) == len(shelf)
    assert items == sorted(items, key=SORT_KEYS[sort])
    assert {p["id"] for p in items} == {p.id for p in shelf}


@pytest.mark.parametrize("sort", SORT_KEYS)
def test_products_added_during_a_walk_cause_no_duplicates_or_gaps(client, shelf, sort):
    store = StoreFactory()
    added: list[Product] = []

    def add_products():
        added.extend(ProductFactory(store=store, price=price) for price in (50, 500, 5000))

    items = walk(client, CATALOG, limit=4, sort=sort, after_first_page=add_products)

    seen = [p["id"] for p in items]
    assert len(seen) == len(set(seen))
    assert {p.id for p in shelf} <= set(seen) <= {p.id for p in shelf + added}
    assert items == sorted(items, key=SORT_KEYS[sort])


def test_the_limit_defaults_to_20_and_stays_within_1_to_100(client, session):
    store = StoreFactory()
    for _ in range(21):
        ProductFactory(store=store)

    assert len(ids(client.get(CATALOG))) == 20
    for limit in (0, 101, -1, "many"):
        response = client.get(CATALOG, query_string={"limit": limit})
        assert response.status_code == 422
        assert "limit" in response.get_json()["errors"]["query"]


def test_a_malformed_or_foreign_cursor_is_a_422(client, shelf):
    newest_cursor = client.get(CATALOG, query_string={"limit": 2}).get_json()["next_cursor"]
    payload, signature = newest_cursor.rsplit(".", 1)

    for cursor, sort in [
        ("garbage", "newest"),
        (f"{payload}.{signature[::-1]}", "newest"),  # tampered
        (newest_cursor, "price_asc"),  # another order's cursor
        (client.get("/api/v1/stores", query_string={"limit": 1}).get_json()["next_cursor"], "newest"),
    ]:
        response = client.get(CATALOG, query_string={"cursor": cursor, "sort": sort})
        assert response.status_code == 422, cursor
        assert "cursor" in response.get_json()["errors"]["query"]


def test_search_matches_name_or_description_case_insensitively(client, session):
    store = StoreFactory()
    by_name = ProductFactory(store=store, name="Blue TEAPOT", description="Cast iron")
    by_description = ProductFactory(store=store, name="Kettle", description="Pairs with a teapot")
    ProductFactory(store=store, name="Mug", description="Stoneware")

    assert ids(client.get(CATALOG, query_string={"q": "teapot"})) == [by_description.id, by_name.id]


def test_search_finds_every_word_in_any_order_in_name_or_description(client, session):
    store = StoreFactory()
    teapot = ProductFactory(store=store, name="Blue Teapot", description="Cast iron, hand finished")
    ProductFactory(store=store, name="Blue Mug", description="Cast iron")

    assert ids(client.get(CATALOG, query_string={"q": "IRON  teapot"})) == [teapot.id]
    assert ids(client.get(CATALOG, query_string={"q": "blue cast finished"})) == [teapot.id]
    assert ids(client.get(CATALOG, query_string={"q": "teapot stoneware"})) == []


def test_a_short_word_finds_products_with_a_word_starting_with_it(client, session):
    store = StoreFactory()
    by_name = ProductFactory(store=store, name="TV stand", description="Solid oak")
    by_description = ProductFactory(store=store, name="Remote", description="Works with tvOS boxes")
    ProductFactory(store=store, name="Lamp", description="Brass")

    assert ids(client.get(CATALOG, query_string={"q": "tv"})) == [by_description.id, by_name.id]
    assert ids(client.get(CATALOG, query_string={"q": "Tv"})) == [by_description.id, by_name.id]


def test_a_one_letter_word_finds_products_with_a_word_starting_with_it(client, session):
    store = StoreFactory()
    brass = ProductFactory(store=store, name="Lamp", description="Brass")
    boxes = ProductFactory(store=store, name="Remote", description="Fits boxes")
    ProductFactory(store=store, name="Mug", description="Stoneware")

    assert ids(client.get(CATALOG, query_string={"q": "B"})) == [boxes.id, brass.id]


def test_short_and_long_words_must_all_match(client, session):
    store = StoreFactory()
    stand = ProductFactory(store=store, name="TV stand", description="Solid oak")
    ProductFactory(store=store, name="TV mount", description="Steel")
    ProductFactory(store=store, name="Oak shelf", description="Solid")

    assert ids(client.get(CATALOG, query_string={"q": "oak tv"})) == [stand.id]
    assert ids(client.get(CATALOG, query_string={"q": "tv so"})) == [stand.id]
    assert ids(client.get(CATALOG, query_string={"q": "tv oak shelf"})) == []


def test_a_short_word_matches_only_at_the_start_of_a_word(client, session):
    store = StoreFactory()
    after_a_space = ProductFactory(store=store, name="Wall-mounted TV bracket")
    ProductFactory(store=store, name="HDTV antenna", description="Not a smart-tv")

    assert ids(client.get(CATALOG, query_string={"q": "tv"})) == [after_a_space.id]


@pytest.mark.parametrize("q", ["%", "_", "&", "!!", "---", "mug %"])
def test_a_word_with_no_letter_or_digit_matches_nothing(client, session, q):
    ProductFactory(name="Mug", description="50% off & more -- !! _")

    assert ids(client.get(CATALOG, query_string={"q": q})) == []


@pytest.mark.parametrize("sort", SORT_KEYS)
def test_a_short_word_combines_with_the_other_filters_and_each_sort(client, session, sort):
    store = StoreFactory()
    stock_and_prices = [(1, 500), (0, 300), (2, 500), (1, 900), (3, 100), (1, 300), (4, 700)]
    stands = [
        ProductFactory(store=store, name=f"TV stand {n}", stock=s, price=p) for n, (s, p) in enumerate(stock_and_prices)
    ]
    ProductFactory(store=StoreFactory(), name="TV stand", price=500)
    ProductFactory(store=store, name="Lamp", price=500)

    query = {"q": "tv", "store_id": store.id, "min_price": 300, "max_price": 700, "in_stock": "true", "sort": sort}
    items = walk(client, CATALOG, limit=2, **query)

    expected = [{"id": p.id, "price": p.price} for p in stands if 300 <= p.price <= 700 and p.stock > 0]
    assert len(expected) == 4
    assert [p["id"] for p in items] == [p["id"] for p in sorted(expected, key=SORT_KEYS[sort])]


def test_search_takes_at_most_five_words(client):
    response = client.get(CATALOG, query_string={"q": "one two three four five six"})

    assert response.status_code == 422
    assert response.get_json()["errors"]["query"]["q"] == ["At most 5 words."]


def test_search_takes_like_wildcards_literally(client, session):
    store = StoreFactory()
    discount = ProductFactory(store=store, name="50% off scarf")
    ProductFactory(store=store, name="500 gram tea")

    assert ids(client.get(CATALOG, query_string={"q": "50%"})) == [discount.id]
    assert ids(client.get(CATALOG, query_string={"q": "_"})) == []


def test_filters_combine(client, shelf):
    store_id = shelf[0].store_id

    found = client.get(
        CATALOG, query_string={"store_id": store_id, "min_price": 300, "max_price": 500, "in_stock": "true"}
    )

    expected = [p for p in shelf if p.store_id == store_id and 300 <= p.price <= 500 and p.stock > 0]
    assert expected and ids(found) == sorted((p.id for p in expected), reverse=True)


def test_in_stock_means_units_left_that_no_order_holds(client, owner, buyer, session):
    store = StoreFactory(owner=session.get(User, owner.user["id"]))
    held, left = ProductFactory(store=store, stock=2), ProductFactory(store=store, stock=3)
    for product in (held, left):
        lines = {"items": [{"product_id": product.id, "quantity": 2}], "shipping_address": shipping_address()}
        assert client.post("/api/v1/orders", headers=buyer.headers, json=lines).status_code == 201
    # The owner counts 2 on the shelf: both are held by the unpaid order.
    assert client.patch(f"{CATALOG}/{held.id}", headers=owner.headers, json={"stock": 2}).status_code == 200

    assert ids(client.get(CATALOG, query_string={"in_stock": "true"})) == [left.id]


def test_price_bounds_are_inclusive(client, shelf):
    assert sorted(p["price"] for p in walk(client, CATALOG, limit=50, min_price=300, max_price=300)) == [300, 300, 300]


def test_in_stock_false_means_no_stock_filter(client, shelf):
    assert len(ids(client.get(CATALOG, query_string={"in_stock": "false"}))) == len(shelf)


@pytest.mark.parametrize(
    "query", [{"min_price": 500, "max_price": 100}, {"sort": "cheapest"}, {"min_price": -1}, {"store_id": 0}, {"q": ""}]
)
def test_bad_filters_are_a_422(client, query):
    assert client.get(CATALOG, query_string=query).status_code == 422


@pytest.mark.parametrize(
    ("url", "query"),
    [
        (CATALOG, {}),
        (CATALOG, {"sort": "price_desc", "q": "product", "in_stock": "true"}),
        ("/api/v1/stores/{store}/products", {"sort": "price_asc"}),
        ("/api/v1/stores", {}),
    ],
)
def test_a_list_costs_the_same_few_statements_for_1_or_100_items(client, shelf, statements, url, query):
    url = url.format(store=shelf[0].store_id)
    counts = {}
    for limit in (1, 100):
        statements.clear()
        assert client.get(url, query_string={"limit": limit, **query}).status_code == 200
        counts[limit] = len(statements)

    assert 1 <= counts[1] == counts[100] <= 2


INDEXED_QUERIES = [
    {},
    {"sort": "price_asc"},
    {"sort": "price_desc"},
    {"store_id": "{store}"},
    {"store_id": "{store}", "sort": "price_asc"},
    {"store_id": "{store}", "sort": "price_desc"},
    {"min_price": 200, "max_price": 800, "sort": "price_asc"},
    {"min_price": 200, "sort": "price_desc", "in_stock": "true"},
    {"in_stock": "true"},
    {"q": "teapot"},
    {"q": "teapot", "sort": "price_asc"},
    {"q": "iron teapot"},
    # Words of one or two letters: no trigram in `%tv%`, but `tv%` and `% tv%` have two.
    {"q": "zq"},
    {"q": "tv"},
    {"q": "a"},
    {"q": "te"},
    {"q": "te", "sort": "price_asc"},
    {"q": "te", "min_price": 200, "in_stock": "true", "sort": "price_desc"},
    {"q": "te iron"},
    {"q": "teapot tv"},
    {"q": "iron te st"},
]


@pytest.mark.postgres
def test_every_catalog_query_is_served_by_an_index(client, session, test_engine, statements):
    """On 50,000 products Postgres answers each filter and sort, first page and later ones, from
    an index: no sequential scan of products, no sort of the catalog, and a text search (of a
    rare word) through the trigram index, words of one or two letters included ('te' starts the
    50 teapots; 'zq', 'tv' and 'a' start no word there)."""
    store = StoreFactory()
    session.execute(
        text(
            "INSERT INTO products"
            " (store_id, name, description, price, currency, stock, is_active, created_at, updated_at)"
            " SELECT :store, CASE WHEN n % 1000 = 0 THEN 'Teapot ' || n ELSE 'Mug ' || n END,"
            " CASE WHEN n % 2 = 1 THEN 'Cast iron' ELSE 'Stoneware' END,"
            " 100 + n % 900, 'aed', n % 4, true, now(), now()"
            " FROM generate_series(1, 50000) AS n"
        ),
        {"store": store.id},
    )
    session.execute(text("VACUUM ANALYZE products"))  # as autovacuum would: folds GIN pending lists in
    connection = test_engine.raw_connection()
    try:
        for template in INDEXED_QUERIES:
            query = {key: str(value).format(store=store.id) for key, value in template.items()}
            for cursor in (None, client.get(CATALOG, query_string={**query, "limit": 5}).get_json()["next_cursor"]):
                statements.clear()
                assert client.get(CATALOG, query_string={**query, "cursor": cursor or []}).status_code == 200
                [(sql, parameters)] = statements
                nodes = plan_nodes(explain(connection, sql, parameters, generic=not value_dependent(sql)))
                scans = [node for node in nodes if node.get("Relation Name") == "products"]
                where = f"{query} cursor={bool(cursor)}: {nodes}"
                assert scans and all(node["Node Type"] != "Seq Scan" for node in scans), where
                if "q" in query:
                    assert "ix_products_search_trgm" in {node.get("Index Name") for node in nodes}, where
                else:
                    assert all(node["Node Type"] not in ("Sort", "Incremental Sort") for node in nodes), where
    finally:
        connection.close()


def value_dependent(sql: str) -> bool:
    """A search or a price range: a statement the app has Postgres plan for its values each time."""
    return " ILIKE " in sql or "products.price >=" in sql or "products.price <=" in sql


def explain(connection, sql: str, parameters: dict, *, generic: bool) -> list:
    """The plan Postgres runs `sql` with: planned for these values, or the generic plan of a
    read the app plans once per connection (nexus.database.plan_once)."""
    cursor = connection.cursor()
    if not generic:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", parameters)
        return cursor.fetchone()[0]
    cursor.execute("SET plan_cache_mode = force_generic_plan")
    name, order = database._prepare(cursor, sql, {})
    arguments = ", ".join(f"%({parameter})s" for parameter in order)
    cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({arguments})", parameters)
    plan = cursor.fetchone()[0]
    cursor.execute(f"DEALLOCATE {name}")
    return plan


@pytest.mark.postgres
def test_a_page_without_search_or_price_range_is_planned_once_per_connection(app, client, session):
    """Pages of the catalog, a store's products and the stores list are prepared on the list
    connection the first time and run from one generic plan after; a search or a price range
    is planned for its values each time (its best plan depends on them)."""
    store = StoreFactory()
    ProductFactory.create_batch(3, store=store, name="Teapot")
    with app.app_context():
        db.engines[READS].dispose()  # connections of earlier tests hold their pages prepared
    plain = [
        {},
        {"limit": 1},
        {"store_id": store.id, "in_stock": "true", "sort": "price_asc"},
    ]
    by_value = [{"q": "teapot"}, {"min_price": 1}, {"max_price": 10**6, "sort": "price_desc"}]
    for query in plain + by_value:
        for _ in range(3):
            page = client.get(CATALOG, query_string=query)
            assert page.status_code == 200
            if page.get_json()["next_cursor"]:
                after = {**query, "cursor": page.get_json()["next_cursor"]}
                assert client.get(CATALOG, query_string=after).status_code == 200
    for url in (f"/api/v1/stores/{store.id}/products", "/api/v1/stores", "/api/v1/stores?q=tea"):
        assert client.get(url).status_code == client.get(url).status_code == 200

    with app.app_context(), db.engines[READS].connect() as connection:
        prepared = connection.exec_driver_sql(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        ).all()
    statements = [statement for statement, _, _ in prepared]
    # The catalog's first page (whatever the limit), its page after a cursor, its store and stock
    # filtered page in price order; a store's products; the stores.
    assert len(statements) == 5, statements
    assert all(generic >= 1 and custom == 0 for _, generic, custom in prepared), prepared
    assert not [statement for statement in statements if value_dependent(statement)]


@pytest.mark.postgres
def test_a_connection_keeps_at_most_so_many_prepared_pages_and_prepares_an_evicted_one_again(
    app, client, shelf, monkeypatch
):
    monkeypatch.setattr(database, "MAX_PREPARED_PER_CONNECTION", 2)
    with app.app_context():
        db.engines[READS].dispose()
    queries = [{}, {"sort": "price_asc"}, {"sort": "price_desc"}, {"in_stock": "true"}]
    first = [client.get(CATALOG, query_string=query).get_json() for query in queries]

    again = [client.get(CATALOG, query_string=query).get_json() for query in reversed(queries)]

    assert again == list(reversed(first))
    with app.app_context(), db.engines[READS].connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar() == 2


@pytest.mark.postgres
def test_a_page_whose_prepared_statement_went_stale_is_prepared_again(app, client, shelf, session):
    """A migration that changes a column the page reads ("cached plan must not change result
    type"), or a DEALLOCATE, leaves the connection's prepared page unusable: the read prepares
    it afresh and answers, instead of failing on that connection from then on."""
    page = client.get(CATALOG).get_json()
    with app.app_context(), db.engines[READS].connect() as connection:
        connection.exec_driver_sql("DEALLOCATE ALL")  # on the connection the next request takes (LIFO)
    assert client.get(CATALOG).get_json() == page

    session.execute(text("ALTER TABLE products ALTER COLUMN sku TYPE varchar(80)"))
    session.commit()
    try:
        assert client.get(CATALOG).get_json() == page
    finally:
        session.execute(text("ALTER TABLE products ALTER COLUMN sku TYPE varchar(64)"))
        session.commit()
    assert client.get(CATALOG).get_json() == page


def plan_nodes(plan: list) -> list[dict]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    nodes, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes
