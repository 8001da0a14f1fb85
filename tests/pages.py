"""Reading the API's paged lists (not a test module)."""

from collections.abc import Callable

from flask.testing import FlaskClient
from werkzeug.test import TestResponse


def ids(response: TestResponse) -> list[int]:
    """The ids of a page's items, from a 200."""
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def walk(
    client: FlaskClient,
    url: str,
    *,
    limit: int,
    headers: dict[str, str] | None = None,
    after_first_page: Callable[[], object] = lambda: None,
    **query,
) -> list[dict]:
    """Every item of a list, following next_cursor to the end."""
    items, cursor = [], None
    while True:
        response = client.get(
            url, headers=headers, query_string={"limit": limit, **query, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items += body["items"]
        if cursor is None:
            after_first_page()
        cursor = body["next_cursor"]
        if cursor is None:
            return items
