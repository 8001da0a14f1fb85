"""Passwordless sign-in: one-time codes by email, then JWT access and refresh tokens."""
