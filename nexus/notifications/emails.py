"""Every email about orders and reports, as a subject, a plain-text body and an HTML body.

The order's number is in every subject. Values people typed (names, addresses, notes) are
HTML-escaped in the HTML body, never in the text one. Money is written in the currency's minor
unit (`nexus.money.formatted`). Rendering reads only what it is given: the jobs in
`nexus.notifications.service` read the order and send.
"""

from dataclasses import dataclass
from html import escape
from typing import Any

from nexus.countries import country_name
from nexus.money import formatted
from nexus.orders.models import Order


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


HTML = """<!doctype html>
<html><body style="font-family: sans-serif">
{body}
</body></html>
"""


def _paragraphs(*paragraphs: str) -> str:
    """HTML paragraphs of text that is already escaped (or is our own markup)."""
    return "\n".join(f"<p>{paragraph}</p>" for paragraph in paragraphs if paragraph)


def _email(subject: str, text: str, *html_parts: str) -> Email:
    return Email(subject, text, HTML.format(body="\n".join(part for part in html_parts if part)))


# --- pieces of an order -------------------------------------------------------------------


def _lines_text(order: Order) -> str:
    lines = [
        f"  {item.quantity} x {item.name} at {formatted(item.unit_price, order.currency)}: "
        f"{formatted(item.line_total, order.currency)}"
        for item in order.items
    ]
    return "\n".join([*lines, f"  Total: {formatted(order.total, order.currency)}"])


def _lines_html(order: Order) -> str:
    cell = 'style="padding: 2px 8px"'
    rows = "".join(
        f"<tr><td {cell}>{item.quantity} &times; {escape(item.name)}</td>"
        f"<td {cell}>{escape(formatted(item.unit_price, order.currency))}</td>"
        f'<td {cell} align="right">{escape(formatted(item.line_total, order.currency))}</td></tr>\n'
        for item in order.items
    )
    total = f'<tr><th {cell} align="left" colspan="2">Total</th><th {cell} align="right">'
    total += f"{escape(formatted(order.total, order.currency))}</th></tr>"
    return f'<table style="border-collapse: collapse">\n{rows}{total}\n</table>'


def _address_lines(address: dict[str, Any]) -> list[str]:
    """The address as it goes on a parcel, one line each; the phone last."""
    place = " ".join(part for part in (address["postal_code"], address["city"]) if part)
    if address["region"]:
        place = f"{place}, {address['region']}"
    lines = [address["name"], address["line1"], address["line2"], place, country_name(address["country"])]
    if address["phone"]:
        lines.append(f"Phone: {address['phone']}")
    return [line for line in lines if line]


NO_ADDRESS = "No shipping address was given with this order (it was placed before Nexus asked for one)."


def _address_text(order: Order) -> str:
    if order.shipping_address is None:
        return f"  {NO_ADDRESS}"
    return "\n".join(f"  {line}" for line in _address_lines(order.shipping_address))


def _address_html(order: Order) -> str:
    if order.shipping_address is None:
        return f"<p>{escape(NO_ADDRESS)}</p>"
    lines = "<br>\n".join(escape(line) for line in _address_lines(order.shipping_address))
    return f'<address style="font-style: normal; padding-left: 8px">\n{lines}\n</address>'


# --- to the buyer -------------------------------------------------------------------------


def receipt(order: Order, store_name: str) -> Email:
    """The order is paid: what was bought, for how much, and where it goes."""
    total = formatted(order.total, order.currency)
    intro = f"Thank you for your order #{order.id} from {store_name}. We received your payment of {total}."
    text = (
        f"Hello,\n\n{intro}\n\n{_lines_text(order)}\n\nIt will be sent to:\n{_address_text(order)}\n\n"
        "We will email you when it ships.\n"
    )
    return _email(
        f"Your receipt for Nexus order #{order.id}",
        text,
        _paragraphs("Hello,", escape(intro)),
        _lines_html(order),
        _paragraphs("It will be sent to:"),
        _address_html(order),
        _paragraphs("We will email you when it ships."),
    )


def _news(subject: str, *sentences: str) -> Email:
    """A short note to the buyer: a greeting and a few sentences."""
    text = "Hello,\n\n" + "\n\n".join(sentences) + "\n"
    return _email(subject, text, _paragraphs("Hello,", *(escape(sentence) for sentence in sentences)))


def shipped(order: Order, store_name: str) -> Email:
    return _news(
        f"Your Nexus order #{order.id} has shipped",
        f"{store_name} has shipped your order #{order.id}; it is on its way to you.",
    )


def delivered(order: Order, store_name: str) -> Email:
    return _news(
        f"Your Nexus order #{order.id} was delivered",
        f"Your order #{order.id} from {store_name} was delivered. We hope you enjoy it.",
    )


def refunded(order: Order, store_name: str, *, amount: int, refunded_total: int) -> Email:
    """`amount` was refunded just now; `refunded_total` of the order is refunded with it."""
    refund, total = formatted(amount, order.currency), formatted(order.total, order.currency)
    if refunded_total >= order.total:
        so_far = f"Your order is now refunded in full ({total})."
    else:
        so_far = f"{formatted(refunded_total, order.currency)} of its {total} is refunded so far."
    return _news(
        f"Nexus order #{order.id}: {refund} refunded",
        f"We refunded {refund} of your order #{order.id} from {store_name} to your card. {so_far}",
        "Your bank may take a few days to show it.",
    )


def cancelled(order: Order, store_name: str, *, by: str) -> Email:
    """Cancelled by the store (`by="store"`) or by Nexus's admins (`by="admin"`)."""
    who = store_name if by == "store" else "Nexus"
    which = f"#{order.id}" if by == "store" else f"#{order.id} from {store_name}"
    return _news(
        f"Your Nexus order #{order.id} was cancelled",
        f"{who} cancelled your order {which} before it was paid. Nothing was charged.",
    )


def expired(order: Order, store_name: str) -> Email:
    return _news(
        f"Your Nexus order #{order.id} expired unpaid",
        f"Your order #{order.id} from {store_name} was not paid in time, so it expired and its items "
        "went back on sale. Nothing was charged; you are welcome to order again.",
    )


# --- to the store's owner -----------------------------------------------------------------


def to_fulfil(order: Order, store_name: str) -> Email:
    """A paid order to send: its lines, where to, and how to reach the buyer."""
    intro = f"Order #{order.id} at {store_name} is paid and ready to fulfil."
    buyer = f"Buyer: {order.buyer_email}"
    note = f"Note from the buyer: {order.note}" if order.note else ""
    after = "Once it leaves, mark it fulfilled, then shipped, in your store's orders; we tell the buyer it shipped."
    text = (
        f"Hello,\n\n{intro}\n\n{_lines_text(order)}\n\nShip to:\n{_address_text(order)}\n\n{buyer}\n"
        + (f"{note}\n" if note else "")
        + f"\n{after}\n"
    )
    return _email(
        f"Order #{order.id} is paid: ready to fulfil",
        text,
        _paragraphs("Hello,", escape(intro)),
        _lines_html(order),
        _paragraphs("Ship to:"),
        _address_html(order),
        _paragraphs(escape(buyer), escape(note), escape(after)),
    )


# --- reports --------------------------------------------------------------------------------

REPORT_READY_TEXT = """Hello,

Your sales report #{id} ({date_from} to {date_to}, {rows} orders) is ready.
Download it from your report history, or at {path}.
"""

REPORT_READY_HTML = """<!doctype html>
<html><body style="font-family: sans-serif">
<p>Hello,</p>
<p>Your sales report #{id} ({date_from} to {date_to}, {rows} orders) is ready.</p>
<p>Download it from your report history, or at <code>{path}</code>.</p>
</body></html>
"""


def report_ready(*, report_id: int, row_count: int, date_from: str, date_to: str) -> Email:
    """A report its user asked for can be downloaded."""
    fields = {
        "id": report_id,
        "rows": row_count,
        "path": f"/api/v1/reports/{report_id}/download",
        "date_from": date_from,
        "date_to": date_to,
    }
    escaped = {name: escape(str(value)) for name, value in fields.items()}
    return Email(
        f"Your Nexus sales report #{report_id} is ready",
        REPORT_READY_TEXT.format(**fields),
        REPORT_READY_HTML.format(**escaped),
    )
