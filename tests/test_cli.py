"""`flask --app wsgi users create-admin` and `auth prune-tokens`."""

from sqlalchemy import select

from nexus.auth.models import RevokedToken
from nexus.users.models import User
from tests.conftest import run_command
from tests.factories import UserFactory


def test_create_admin_makes_an_active_verified_admin_who_can_sign_in(app, client, session, sign_in):
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "Root@Example.com", "--full-name", "Root"])

    assert result.exit_code == 0, result.output
    assert "root@example.com is an admin" in result.output
    admin = sign_in("root@example.com")
    assert (admin.user["role"], admin.user["is_active"], admin.user["is_verified"], admin.user["full_name"]) == (
        "admin",
        True,
        True,
        "Root",
    )


def test_create_admin_promotes_an_existing_user(app, session):
    UserFactory(email="ada@example.com", is_active=False, is_verified=False, full_name="Ada")

    result = app.test_cli_runner().invoke(args=["users", "create-admin", "ada@example.com"])

    assert result.exit_code == 0, result.output
    rows = session.execute(select(User.email, User.role, User.is_active, User.is_verified, User.full_name)).all()
    assert [tuple(row) for row in rows] == [("ada@example.com", "admin", True, True, "Ada")]


def test_create_admin_refuses_a_bad_email(app):
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "not-an-email"])

    assert result.exit_code == 2
    assert "Not a valid email address" in result.output


def test_prune_tokens_deletes_revoked_tokens_past_their_expiry_and_says_how_many(app, client, session, sign_in):
    ada = sign_in("ada@example.com")
    client.post("/api/v1/auth/logout", headers=ada.headers, json={"refresh_token": ada.refresh_token})
    assert sorted(session.scalars(select(RevokedToken.token_type))) == ["access", "refresh"]

    assert "pruned 0 revoked tokens" in run_command(app, "auth", "prune-tokens", after_minutes=14)
    assert "pruned 1 revoked tokens" in run_command(app, "auth", "prune-tokens", after_minutes=16)
    assert session.scalars(select(RevokedToken.token_type)).all() == ["refresh"]  # it lives 30 days
    assert "pruned 1 revoked tokens" in run_command(app, "auth", "prune-tokens", after_minutes=31 * 24 * 60)
    assert session.scalars(select(RevokedToken)).all() == []
