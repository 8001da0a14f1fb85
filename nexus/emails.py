"""Sending an email (plain text plus HTML) from a job: through Flask-Mail, or, in development
without MAIL_SERVER, to the log, which is then the inbox (the contract says so)."""

import logging

from flask import current_app
from flask_mail import Message

from nexus.extensions import mail

log = logging.getLogger(__name__)


def send_email(subject: str, recipient: str, text: str, html: str, *, summary: str | None = None) -> None:
    """Send it, or raise (smtplib's or the socket's error) so that the job is tried again.
    `summary` is the first line of the development log entry."""
    config = current_app.config
    if config["ENVIRONMENT"] == "development" and not config["MAIL_SERVER"]:
        first = summary or f"Email to {recipient}: {subject}"
        log.warning("%s (MAIL_SERVER is not set, so the email was logged, not sent)\n\n%s", first, text)
        return
    mail.send(Message(subject, recipients=[recipient], body=text, html=html))
