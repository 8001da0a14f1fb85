"""Sign-in with emailed one-time codes: every rule of the contract's auth section, over HTTP."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from nexus.auth.models import OtpCode
from nexus.database import utcnow
from nexus.users.models import User
from tests.conftest import all_at_once, code_in
from tests.factories import UserFactory

REGISTER = "/api/v1/auth/register"
REQUEST = "/api/v1/auth/otp/request"
VERIFY = "/api/v1/auth/otp/verify"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/profile/me"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wrong(code: str) -> str:
    """Another valid-looking code."""
    return f"{(int(code) + 1) % 10**6:06d}"


def deactivate(session, email: str) -> None:
    session.execute(update(User).where(User.email == email).values(is_active=False))
    session.commit()


# --- register and otp/request ------------------------------------------------------------


def test_register_creates_the_user_and_emails_a_code(client, outbox, session):
    response = client.post(
        REGISTER, json={"email": "Ada@Example.com", "full_name": "Ada Lovelace", "phone": "+971 50 123 4567"}
    )

    assert response.status_code == 202
    assert "detail" in response.get_json()
    [message] = outbox
    assert message.recipients == ["ada@example.com"]
    assert code_in(message).isdigit()
    assert code_in(message) in message.html
    user = session.scalars(select(User)).one()
    assert (user.email, user.role, user.is_verified) == ("ada@example.com", "customer", False)


def test_the_details_given_to_register_take_effect_when_its_code_is_verified(client, outbox, session):
    client.post(REGISTER, json={"email": "ada@example.com", "full_name": "Ada Lovelace", "phone": "+971 50 123 4567"})
    code = code_in(outbox[-1])
    assert session.execute(select(User.full_name, User.phone)).one() == (None, None)  # not before

    signed_in = client.post(VERIFY, json={"email": "ada@example.com", "code": code}).get_json()

    assert (signed_in["user"]["full_name"], signed_in["user"]["phone"]) == ("Ada Lovelace", "+971 50 123 4567")


def test_nobody_plants_details_on_an_account_its_owner_verifies(client, outbox, session):
    UserFactory(email="ada@example.com", full_name="Ada Lovelace", phone=None)
    client.post(REGISTER, json={"email": "ada@example.com", "full_name": "Mallory", "phone": "+1 555 0100"})
    assert len(outbox) == 1  # sent; later Ada asks for her own code
    client.post(REQUEST, json={"email": "ada@example.com"})

    signed_in = client.post(VERIFY, json={"email": "ada@example.com", "code": code_in(outbox[-1])}).get_json()

    assert (signed_in["user"]["full_name"], signed_in["user"]["phone"]) == ("Ada Lovelace", None)


def test_register_answers_the_same_for_new_and_existing_addresses(client, outbox, session):
    UserFactory(email="known@example.com", full_name="Known Person")

    new = client.post(REGISTER, json={"email": "new@example.com"})
    existing = client.post(REGISTER, json={"email": "known@example.com", "full_name": "Someone Else"})

    assert (new.status_code, new.get_json()) == (existing.status_code, existing.get_json())
    assert sorted(m.recipients for m in outbox) == [["known@example.com"], ["new@example.com"]]  # jobs run in parallel
    assert session.scalars(select(User.full_name).where(User.email == "known@example.com")).one() == "Known Person"


def test_register_twice_keeps_one_account(client, outbox, session):
    client.post(REGISTER, json={"email": "twice@example.com"})
    client.post(REGISTER, json={"email": "TWICE@example.com"})

    assert len(outbox) == 2
    assert session.scalars(select(User.email)).all() == ["twice@example.com"]


def test_register_refuses_bad_input_field_by_field(client, outbox):
    response = client.post(REGISTER, json={"email": "not-an-email", "phone": "call me", "role": "admin"})

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == 422 and body["status"] == "Unprocessable Entity"
    assert set(body["errors"]["json"]) == {"email", "phone", "role"}
    assert outbox == []


def test_otp_request_answers_the_same_for_unknown_addresses_and_sends_nothing(client, outbox):
    UserFactory(email="known@example.com")

    unknown = client.post(REQUEST, json={"email": "nobody@example.com"})
    known = client.post(REQUEST, json={"email": "known@example.com"})

    assert (unknown.status_code, unknown.get_json()) == (known.status_code, known.get_json())
    assert known.status_code == 202
    assert [m.recipients for m in outbox] == [["known@example.com"]]


def test_deactivated_user_gets_no_code_but_the_same_answer(client, outbox, session):
    UserFactory(email="gone@example.com", is_active=False)

    via_request = client.post(REQUEST, json={"email": "gone@example.com"})
    via_register = client.post(REGISTER, json={"email": "gone@example.com"})

    assert via_request.status_code == via_register.status_code == 202
    assert outbox == []


# --- otp/verify -------------------------------------------------------------------------


def test_right_code_signs_in_and_marks_the_email_verified(client, outbox):
    client.post(REGISTER, json={"email": "ada@example.com"})

    response = client.post(VERIFY, json={"email": "ADA@example.com", "code": code_in(outbox[0])})

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["is_verified"] is True
    assert client.get(ME, headers=bearer(body["access_token"])).get_json()["is_verified"] is True


def test_codes_are_stored_only_as_a_hash(client, outbox, session):
    client.post(REGISTER, json={"email": "ada@example.com"})
    code = code_in(outbox[0])

    row = session.scalars(select(OtpCode)).one()
    assert code not in row.code_hash
    assert len(row.code_hash) == 64


def test_wrong_code_and_unknown_email_get_the_same_401(client, outbox):
    client.post(REGISTER, json={"email": "ada@example.com"})
    guess = wrong(code_in(outbox[0]))

    wrong_code = client.post(VERIFY, json={"email": "ada@example.com", "code": guess})
    unknown = client.post(VERIFY, json={"email": "nobody@example.com", "code": guess})

    assert wrong_code.status_code == unknown.status_code == 401
    assert wrong_code.get_json() == unknown.get_json()


def test_a_code_works_only_once(client, outbox):
    client.post(REGISTER, json={"email": "ada@example.com"})
    code = code_in(outbox[0])

    assert client.post(VERIFY, json={"email": "ada@example.com", "code": code}).status_code == 200
    assert client.post(VERIFY, json={"email": "ada@example.com", "code": code}).status_code == 401


def test_a_code_expires_after_the_ttl(client, outbox):
    client.post(REGISTER, json={"email": "ada@example.com"})
    code = code_in(outbox[0])

    with time_machine.travel(utcnow() + timedelta(seconds=601)):
        assert client.post(VERIFY, json={"email": "ada@example.com", "code": code}).status_code == 401


def test_a_code_still_works_just_before_it_expires(client, outbox):
    client.post(REGISTER, json={"email": "ada@example.com"})
    code = code_in(outbox[0])

    with time_machine.travel(utcnow() + timedelta(seconds=590)):
        assert client.post(VERIFY, json={"email": "ada@example.com", "code": code}).status_code == 200


def test_five_wrong_tries_kill_the_code_even_for_the_right_one(client, outbox):
    client.post(REGISTER, json={"email": "ada@example.com"})
    code = code_in(outbox[0])

    for _ in range(5):
        assert client.post(VERIFY, json={"email": "ada@example.com", "code": wrong(code)}).status_code == 401
    assert client.post(VERIFY, json={"email": "ada@example.com", "code": code}).status_code == 401


def test_four_wrong_tries_still_leave_the_right_code_usable(client, outbox):
    client.post(REGISTER, json={"email": "ada@example.com"})
    code = code_in(outbox[0])

    for _ in range(4):
        client.post(VERIFY, json={"email": "ada@example.com", "code": wrong(code)})
    assert client.post(VERIFY, json={"email": "ada@example.com", "code": code}).status_code == 200


def test_a_new_code_invalidates_the_older_one(client, outbox):
    client.post(REGISTER, json={"email": "ada@example.com"})
    first = code_in(outbox[0])  # its job has made the account
    client.post(REQUEST, json={"email": "ada@example.com"})
    second = code_in(outbox[1])

    if first != second:  # two random codes may coincide (one in a million)
        assert client.post(VERIFY, json={"email": "ada@example.com", "code": first}).status_code == 401
    assert client.post(VERIFY, json={"email": "ada@example.com", "code": second}).status_code == 200


def test_a_code_is_refused_once_the_user_is_deactivated(client, outbox, session):
    client.post(REGISTER, json={"email": "ada@example.com"})
    code = code_in(outbox[0])  # its job has made the account and sent the code
    deactivate(session, "ada@example.com")

    assert client.post(VERIFY, json={"email": "ada@example.com", "code": code}).status_code == 401


def test_a_malformed_code_is_a_validation_error(client):
    response = client.post(VERIFY, json={"email": "ada@example.com", "code": "12ab"})

    assert response.status_code == 422
    assert "code" in response.get_json()["errors"]["json"]


# --- tokens, refresh and logout ---------------------------------------------------------


def test_refresh_rotates_the_pair(client, sign_in):
    ada = sign_in("ada@example.com")

    response = client.post(REFRESH, headers=bearer(ada.refresh_token))

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token"] != ada.refresh_token
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200
    assert client.post(REFRESH, headers=bearer(body["refresh_token"])).status_code == 200


def test_a_rotated_refresh_token_presented_again_revokes_every_refresh_token(client, sign_in):
    laptop = sign_in("ada@example.com")
    phone = sign_in("ada@example.com")
    rotated = client.post(REFRESH, headers=bearer(laptop.refresh_token)).get_json()

    with time_machine.travel(utcnow() + timedelta(seconds=11)):  # past the 10 s grace
        replay = client.post(REFRESH, headers=bearer(laptop.refresh_token))

    assert replay.status_code == 401
    assert replay.get_json()["code"] == 401
    assert client.post(REFRESH, headers=bearer(rotated["refresh_token"])).status_code == 401
    assert client.post(REFRESH, headers=bearer(phone.refresh_token)).status_code == 401
    fresh = sign_in("ada@example.com")
    assert client.post(REFRESH, headers=bearer(fresh.refresh_token)).status_code == 200


def test_a_rotated_refresh_token_presented_again_within_the_grace_gets_a_fresh_pair_and_revokes_nothing(
    client, sign_in
):
    ada = sign_in("ada@example.com")
    first = client.post(REFRESH, headers=bearer(ada.refresh_token)).get_json()

    with time_machine.travel(utcnow() + timedelta(seconds=9)):  # the other tab, a little late
        second = client.post(REFRESH, headers=bearer(ada.refresh_token))

        assert second.status_code == 200, second.get_json()
        assert second.get_json()["refresh_token"] != first["refresh_token"]
        for pair in (first, second.get_json()):
            assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200
            assert client.post(REFRESH, headers=bearer(pair["refresh_token"])).status_code == 200


def test_a_signed_out_refresh_token_gets_no_grace(client, sign_in):
    ada = sign_in("ada@example.com")
    other = sign_in("ada@example.com")
    client.post(LOGOUT, headers=ada.headers, json={"refresh_token": ada.refresh_token})

    assert client.post(REFRESH, headers=bearer(ada.refresh_token)).status_code == 401
    assert client.post(REFRESH, headers=bearer(other.refresh_token)).status_code == 401  # reuse: all revoked


@pytest.mark.postgres  # concurrent writes: SQLite answers 503 ("database is locked")
def test_two_tabs_refreshing_at_once_both_get_a_pair_and_stay_signed_in(app, client, sign_in):
    ada = sign_in("ada@example.com")

    answers = all_at_once(app, [lambda c: c.post(REFRESH, headers=bearer(ada.refresh_token))] * 2)

    assert [answer.status_code for answer in answers] == [200, 200], [answer.get_json() for answer in answers]
    for answer in answers:
        pair = answer.get_json()
        assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200
        assert client.post(REFRESH, headers=bearer(pair["refresh_token"])).status_code == 200


def test_tokens_only_work_where_their_type_belongs(client, sign_in):
    ada = sign_in("ada@example.com")

    assert client.post(REFRESH, headers=bearer(ada.access_token)).status_code == 401
    assert client.get(ME, headers=bearer(ada.refresh_token)).status_code == 401


def test_missing_malformed_and_forged_tokens_get_a_401_in_the_error_shape(client, sign_in):
    ada = sign_in("ada@example.com")
    header, payload, _ = ada.access_token.split(".")

    for headers in ({}, bearer("not-a-jwt"), bearer(f"{header}.{payload}.forged"), {"Authorization": "Basic abc"}):
        response = client.get(ME, headers=headers)
        assert response.status_code == 401
        assert set(response.get_json()) == {"code", "status", "message"}


def test_an_access_token_expires_after_its_lifetime(client, sign_in):
    ada = sign_in("ada@example.com")

    with time_machine.travel(utcnow() + timedelta(seconds=901)):
        response = client.get(ME, headers=ada.headers)

    assert response.status_code == 401


def test_logout_revokes_the_access_token(client, sign_in):
    ada = sign_in("ada@example.com")

    assert client.post(LOGOUT, headers=ada.headers).status_code == 204
    assert client.get(ME, headers=ada.headers).status_code == 401
    assert client.post(REFRESH, headers=bearer(ada.refresh_token)).status_code == 200


def test_logout_with_the_refresh_token_revokes_it_too(client, sign_in):
    ada = sign_in("ada@example.com")

    response = client.post(LOGOUT, headers=ada.headers, json={"refresh_token": ada.refresh_token})

    assert response.status_code == 204
    assert client.post(REFRESH, headers=bearer(ada.refresh_token)).status_code == 401


def test_logout_refuses_someone_elses_refresh_token_and_revokes_nothing(client, sign_in):
    ada = sign_in("ada@example.com")
    bob = sign_in("bob@example.com")

    response = client.post(LOGOUT, headers=ada.headers, json={"refresh_token": bob.refresh_token})

    assert response.status_code == 422
    assert "refresh_token" in response.get_json()["errors"]["json"]
    assert client.get(ME, headers=ada.headers).status_code == 200
    assert client.post(REFRESH, headers=bearer(bob.refresh_token)).status_code == 200


def test_logout_needs_a_token(client):
    assert client.post(LOGOUT).status_code == 401


def test_a_deactivated_user_is_locked_out_at_once(client, sign_in, session):
    ada = sign_in("ada@example.com")
    deactivate(session, "ada@example.com")

    assert client.get(ME, headers=ada.headers).status_code == 401
    assert client.post(REFRESH, headers=bearer(ada.refresh_token)).status_code == 401
