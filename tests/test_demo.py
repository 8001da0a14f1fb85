"""`flask --app wsgi demo seed`: realistic demo data, repeatable with --reset."""

import pytest
from sqlalchemy import func, select

from nexus import create_app
from nexus.stores.models import Product, Store
from tests.conftest import PRODUCTION
from tests.factories import ProductFactory


def seed(app, *args: str):
    result = app.test_cli_runner().invoke(args=["demo", "seed", *args])
    assert result.exit_code == 0, result.output
    return result


def counts(session) -> tuple[int, int]:
    return session.scalar(select(func.count()).select_from(Store)), session.scalar(
        select(func.count()).select_from(Product)
    )


def test_seed_fills_the_catalog_and_the_demo_accounts_can_sign_in(app, client, session, sign_in):
    result = seed(app, "--stores", "3", "--products", "60")

    assert "seeded 3 stores and 60 products" in result.output
    assert counts(session) == (3, 60)
    page = client.get("/api/v1/products", query_string={"limit": 100}).get_json()["items"]
    assert 40 <= len(page) < 60  # a few products and stores are inactive, as in life
    assert all(item["price"] > 0 and item["name"] and item["description"] for item in page)
    assert len({item["store_id"] for item in page}) >= 2
    assert sign_in("demo-buyer@example.com").user["is_verified"] is True
    assert sign_in("demo-owner@example.com").user["id"] == session.scalar(select(Store.owner_id).limit(1))


def test_seed_adds_and_reset_replaces_only_the_demo_catalog(app, session):
    someone_elses = ProductFactory()
    seed(app, "--stores", "2", "--products", "10")
    seed(app, "--stores", "2", "--products", "10")
    assert counts(session) == (5, 21)

    result = seed(app, "--stores", "2", "--products", "10", "--reset")

    assert "removed 4 demo stores" in result.output
    assert counts(session) == (3, 11)
    assert session.get(Product, someone_elses.id) is not None


@pytest.mark.postgres
def test_a_postgres_seed_leaves_the_schema_as_the_migrations_made_it(app):
    seed(app, "--stores", "2", "--products", "500")

    check = app.test_cli_runner().invoke(args=["db", "check"])

    assert check.exit_code == 0, check.output


@pytest.mark.postgres
def test_seed_refuses_a_production_database(database_url):
    production = create_app({**PRODUCTION, "DATABASE_URL": database_url})

    result = production.test_cli_runner().invoke(args=["demo", "seed"])

    assert result.exit_code == 1
    assert "not for production" in result.output
