"""`/api/v1/profile/me`: read your account; change only your name and phone."""

import pytest

ME = "/api/v1/profile/me"


def test_me_is_the_signed_in_user(client, sign_in):
    ada = sign_in("ada@example.com")

    body = client.get(ME, headers=ada.headers).get_json()

    assert body == ada.user
    assert set(body) == {"id", "email", "full_name", "phone", "role", "is_active", "is_verified", "created_at"}
    assert body["created_at"].endswith("+00:00")


def test_me_needs_a_token(client):
    assert client.get(ME).status_code == 401


def test_patch_changes_name_and_phone(client, sign_in):
    ada = sign_in("ada@example.com")

    response = client.patch(ME, headers=ada.headers, json={"full_name": "  Ada Lovelace ", "phone": "+44 20 7946 0000"})

    assert response.status_code == 200
    assert (response.get_json()["full_name"], response.get_json()["phone"]) == ("Ada Lovelace", "+44 20 7946 0000")
    assert client.get(ME, headers=ada.headers).get_json()["full_name"] == "Ada Lovelace"


def test_patch_can_clear_the_phone(client, sign_in):
    ada = sign_in("ada@example.com")
    client.patch(ME, headers=ada.headers, json={"phone": "+44 20 7946 0000"})

    assert client.patch(ME, headers=ada.headers, json={"phone": None}).get_json()["phone"] is None


@pytest.mark.parametrize(
    "field", [{"role": "admin"}, {"email": "x@example.com"}, {"is_active": False}, {"is_verified": True}, {"id": 9}]
)
def test_patch_refuses_any_other_field_and_changes_nothing(client, sign_in, field):
    ada = sign_in("ada@example.com")

    response = client.patch(ME, headers=ada.headers, json={"full_name": "Changed", **field})

    assert response.status_code == 422
    assert list(response.get_json()["errors"]["json"]) == list(field)
    assert client.get(ME, headers=ada.headers).get_json() == ada.user


@pytest.mark.parametrize(
    "change", [{"full_name": ""}, {"full_name": "x" * 121}, {"phone": "call me maybe"}, {"full_name": 5}]
)
def test_patch_validates_values(client, sign_in, change):
    ada = sign_in("ada@example.com")

    assert client.patch(ME, headers=ada.headers, json=change).status_code == 422
