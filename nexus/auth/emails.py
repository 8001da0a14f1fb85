"""The sign-in code email: plain text (the code on a line of its own) plus HTML."""

from nexus.emails import send_email

SUBJECT = "Your Nexus sign-in code"

TEXT = """Hello,

Your Nexus sign-in code is:

{code}

It works once and expires in {minutes} minutes.
If you did not ask for it, you can ignore this email.
"""

HTML = """<!doctype html>
<html><body style="font-family: sans-serif">
<p>Hello,</p>
<p>Your Nexus sign-in code is:</p>
<p style="font-size: 28px; font-weight: bold; letter-spacing: 4px">{code}</p>
<p>It works once and expires in {minutes} minutes.<br>
If you did not ask for it, you can ignore this email.</p>
</body></html>
"""


def send_sign_in_code(email: str, code: str, ttl_seconds: int) -> None:
    """Email the code (raises if it cannot be sent, so the job tries again)."""
    minutes = max(1, ttl_seconds // 60)
    fields = {"code": code, "minutes": minutes}
    send_email(
        SUBJECT, email, TEXT.format(**fields), HTML.format(**fields), summary=f"Sign-in code for {email}: {code}"
    )
