"""The sign-in code email: plain text (the code on a line of its own) plus HTML."""

import logging
import smtplib

from flask import current_app
from flask_mail import Message

from nexus.errors import ServiceUnavailable
from nexus.extensions import mail

log = logging.getLogger(__name__)

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
    """Email the code, or raise ServiceUnavailable so the caller stores nothing unsent."""
    minutes = max(1, ttl_seconds // 60)
    message = Message(
        SUBJECT,
        recipients=[email],
        body=TEXT.format(code=code, minutes=minutes),
        html=HTML.format(code=code, minutes=minutes),
    )
    config = current_app.config
    if config["ENVIRONMENT"] == "development" and not config["MAIL_SERVER"]:
        # Local development without a mail server: the log is the inbox (the contract says so).
        log.warning(
            "Sign-in code for %s: %s (MAIL_SERVER is not set, so the email was logged, not sent)\n\n%s",
            email,
            code,
            message.body,
        )
        return
    try:
        mail.send(message)
    except (smtplib.SMTPException, OSError) as error:
        log.error("sending the sign-in email failed: %s", error.__class__.__name__)
        raise ServiceUnavailable("The sign-in email could not be sent right now; please try again shortly.") from error
