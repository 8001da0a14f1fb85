"""The tests' Stripe (not a test module), also `make dev`'s: a gate, then the endpoints localstripe
lacks, stateful and in Stripe's wire format, with every other request passed on to localstripe.

The gate (tests/stripe_gate.py) checks each request against the API version the pinned
stripe-python speaks, before anything else: a parameter that version does not take, a missing
one, a value of the wrong type or outside a closed enum, a path it does not have or another
`Stripe-Version` is refused as Stripe refuses it, and kept in `refusals` (conftest fails the test
that caused one). What localstripe knows by an older name is renamed on the way to it
(`allowed_payment_method_types` to `payment_method_types`, `TRANSLATED`).

localstripe implements no Connect resource (no accounts, account links, transfers or reversals;
it answers 400 to `transfer_data` or `application_fee_amount`), no webhook endpoints and no
disputes, and stripe-mock keeps no state, so neither can show a transfer made once, lowered, or
reversed by the right share. This server can. stripe-python reaches it unchanged through
`STRIPE_API_BASE`: it serves

    POST /v1/accounts                      an Express account (acct_...)
    GET  /v1/accounts/{id}
    POST /v1/account_links                 a single-use onboarding link (type account_onboarding)
    POST /v1/transfers                     refused while the destination cannot receive transfers, and
                                           from a charge (`source_transaction`) the platform does not
                                           have, in a currency other than the one the charge settled
                                           in, or beyond what is left of its amount
    GET  /v1/transfers?transfer_group=     every page (finding a transfer whose answer was lost)
    GET  /v1/transfers/{id}
    POST /v1/transfers/{id}/reversals      bounded by what is left of the transfer
    GET  /v1/transfers/{id}/reversals
    POST /v1/webhook_endpoints             its secret shown once, in this answer
    GET  /v1/webhook_endpoints
    POST /v1/webhook_endpoints/{id}        its events, URL, status (not its API version: Stripe's cannot change)
    GET  /v1/payment_intents/{id}          the intents of `charge`'s charges (others are localstripe's)
    GET  /v1/disputes?charge=              the disputes of `charge`'s charges

and passes any other request (method, path and query, headers, body; status, headers and body
back) to `upstream` (localstripe), so one base serves payments and Connect alike. Requests are
form-encoded with Stripe's bracket notation (`metadata[order_id]=7`, `capabilities[transfers][requested]=true`,
`expand[0]=...`); answers are JSON objects with `object`, `created` and ids prefixed as Stripe's.
Missing parameters and unknown objects are refused in Stripe's error shape, `{"error": {"type":
"invalid_request_error", "message", "param", "code"?}}`, with Stripe's status (400, 404; 401
without an API key); a parameter the API takes and this server does not model is refused too, and
recorded with the gate's refusals. An `Idempotency-Key` is honoured per account for every request,
passed-on ones included: the same key with the same parameters answers the first answer again
(`Idempotent-Replayed: true`), a refusal or a 500 included, with other parameters a 400
`idempotency_error`, and while the first is served a 409; a request the gate refused saves nothing.
A `Stripe-Account` header makes the request as that connected account (its own key space; an
account the platform does not have is a 403).

Test controls: `charge` (a charge of the platform's that transfers may be made from, for a run
without localstripe, with its intent and a dispute if asked), `finish_onboarding` (what the seller
does on the link's page; visiting the link URL does it too and redirects to the link's
return_url), `require` (Stripe asking for more), `account_updated` / `payout_event` /
`reversed_in_dashboard` (the events Stripe would send), `sign` and `deliver` (Stripe's webhook
signature, with the Connect endpoint's secret), `lose_answers_to` (the request is carried out,
then the connection is dropped unanswered), `forget_idempotency_keys` (as Stripe does after a
day), `refused` (what the gate refused), and `transfers` / `webhook_endpoints` / `calls` /
`received` (what was made, how often each operation was called, and with what).

Checked against Stripe's API reference (docs.stripe.com, through the search tool):
- api/accounts (the Account object: `type`, `charges_enabled`, `payouts_enabled`,
  `details_submitted`, `capabilities.transfers` active|inactive|pending, `requirements.currently_due`
  / `eventually_due` / `past_due` / `disabled_reason`; created with `capabilities[transfers][requested]`);
- api/account_links (`account`, `type` account_onboarding|account_update, `refresh_url`,
  `return_url`; answers `{object: "account_link", created, expires_at (5 minutes on), url}`);
- api/transfers/object and create (`amount`, `currency`, `destination`, `transfer_group`,
  `metadata`, `description`, `source_transaction`; `amount_reversed`, `reversed`, `reversals` as a
  list object, `destination_payment`, `balance_transaction`, `source_type`) and connect/separate-
  charges-and-transfers (a transfer from a charge: in the currency of the charge's balance
  transaction, and the transfers from one charge together at most its amount);
- api/transfer_reversals (`amount` defaults to what is left and can only reverse up to it,
  `metadata`, `refund_application_fee`; `{object: "transfer_reversal", amount, currency,
  transfer, destination_payment_refund, source_refund}`);
- api/errors (the error object; 400 bad request, 401 no key, 403, 404 missing; types
  `invalid_request_error` and `idempotency_error`), idempotency (results saved once the endpoint
  runs, keys compared with their parameters);
- connect/webhooks (events of connected accounts carry a top-level `account`) and webhooks
  signatures (`Stripe-Signature: t=...,v1=HMAC-SHA256(t.payload)`);
- api/webhook_endpoints (`url`, `enabled_events`, `api_version` and `connect` at creation only,
  `secret` "only returned at creation", `status` enabled|disabled) and api/disputes (`charge`,
  `payment_intent`, `amount`, `reason`, `status`, `evidence_details.due_by`; listed by `charge`).
Not modelled: balances (a transfer never fails for insufficient funds), payouts themselves (only
their events), and anything Nexus does not call.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import re
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests import stripe_gate

PLATFORM = "platform"  # the key space of requests made as the platform itself
LINK_SECONDS = 300  # Stripe's account links expire 5 minutes after they are created
UPSTREAM_KEY = "Bearer sk_test_connect_stand_in"  # how this server asks localstripe of a charge
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
ONBOARDING_DUE = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


class StripeError(Exception):
    """A refusal in Stripe's error shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": kind, "message": message}}
        if param:
            self.body["error"]["param"] = param
        if code:
            self.body["error"]["code"] = code


def _missing(what: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {what}: '{object_id}'", param=param, code="resource_missing")


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket notation as nested values: `a[b][c]=v` is {"a": {"b": {"c": "v"}}}, and
    a level whose keys are the indexes 0, 1, ... (`expand[0]`, `expand[1]`) a list."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        if match is None:
            raise StripeError(400, f"Invalid parameter name: {key}", param=key)
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise StripeError(400, f"Invalid hash or array: {key}", param=key)
        node[path[-1]] = value
    return _lists(tree)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and sorted(items) == sorted(str(index) for index in range(len(items))):
        return [items[str(index)] for index in range(len(items))]
    return items


def _integer(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    if name not in params:
        if required:
            raise StripeError(400, f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    value = params[name]
    if not isinstance(value, str) or not value.isdigit():
        raise StripeError(400, f"Invalid integer: {value}", param=name, code="parameter_invalid_integer")
    if int(value) < 1:
        raise StripeError(400, "This value must be greater than or equal to 1.", param=name)
    return int(value)


def _text(params: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None and required:
        raise StripeError(400, f"Missing required param: {name}.", param=name, code="parameter_missing")
    if value is not None and not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {value!r}", param=name)
    return value


def _metadata(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise StripeError(400, "Invalid metadata: a hash of string keys and values.", param="metadata")
    return metadata


class NotModelled(StripeError):
    """A parameter the pinned API takes and this stand-in does not model: refused (and recorded
    with the gate's refusals), so no test passes on a request whose effect nothing here shows."""


def _known(params: dict[str, Any], modelled: set[str]) -> None:
    for name in params:
        if name not in modelled:
            raise NotModelled(400, f"The stand-in does not model the parameter {name}.", param=name)


def _page(items: list[dict], params: dict[str, Any], url: str) -> dict:
    """A page of a list, newest first, as Stripe pages them: `limit` (10) after `starting_after`."""
    limit = _integer(params, "limit", required=False) or 10
    after = params.get("starting_after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise _missing("object", after, "starting_after")
        items = items[ids.index(after) + 1 :]
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}


def _events(params: dict[str, Any], *, required: bool) -> list[str]:
    events = params.get("enabled_events")
    if events is None and required:
        raise StripeError(
            400, "Missing required param: enabled_events.", param="enabled_events", code="parameter_missing"
        )
    return list(events or [])


def _url(params: dict[str, Any], name: str) -> str:
    url = _text(params, name)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise StripeError(400, f"Not a valid URL: {url}", param=name, code="url_invalid")
    return url


def _without_connect(endpoint: dict) -> dict:
    """A webhook endpoint as Stripe shows it: whether it takes connected accounts' events is
    kept here for the tests, not in Stripe's object (nor, after its creation, the secret)."""
    return {key: value for key, value in endpoint.items() if key != "connect"}


# Parameters localstripe knows by the names of its older API: renamed on their way to it.
TRANSLATED = {
    name: {"allowed_payment_method_types": "payment_method_types"}
    for name in ("payment_intents.create", "payment_intents.update", "payment_intents.confirm")
}


def _renamed(key: str, names: dict[str, str]) -> str:
    """`allowed_payment_method_types[0]` as `payment_method_types[0]`, for `names` of that mapping."""
    head, bracket, rest = key.partition("[")
    return names.get(head, head) + bracket + rest


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class StripeConnect:
    """The stand-in, serving on 127.0.0.1 from a thread of its own; `url` is its base address."""

    def __init__(self, *, webhook_secret: str, upstream: str | None = None, port: int = 0) -> None:
        self.webhook_secret = webhook_secret
        self.upstream = urllib.parse.urlsplit(upstream) if upstream else None
        self.accounts: dict[str, dict] = {}
        self.links: dict[str, dict] = {}  # token -> the link's account, urls, expiry; popped when used
        self.transfers: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}  # the platform's charges without localstripe: see `charge`
        self.intents: dict[str, dict] = {}  # and the intents they paid
        self.disputes: dict[str, dict] = {}  # of those charges
        self.webhook_endpoints: dict[str, dict] = {}
        self.calls: Counter = Counter()  # (method, operation) -> requests that passed the gate
        self.received: list[tuple[str, dict]] = []  # (operation, its parameters) of each of them
        self.webhook_url: str | None = None  # where `deliver` and a visited link send their events
        self.refusals: list[dict] = []  # what the gate refused (see `refused`)
        self._remembered: dict[tuple[str, str], tuple[str, int, bytes]] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._lost: Counter = Counter()
        self._lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, name="stripe-connect", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the API --------------------------------------------------------------------------

    def routes(self) -> dict[str, Callable]:
        """The operations served here (named as stripe_gate names them), each called with the
        request's parameters, the account it is made as, and the ids in its path."""
        return {
            "accounts.create": self.create_account,
            "accounts.retrieve": self.retrieve_account,
            "account_links.create": self.create_account_link,
            "transfers.create": self.create_transfer,
            "transfers.list": self.list_transfers,
            "transfers.retrieve": self.retrieve_transfer,
            "payment_intents.retrieve": self.retrieve_payment_intent,
            "disputes.list": self.list_disputes,
            "transfer_reversals.create": self.create_reversal,
            "transfer_reversals.list": self.list_reversals,
            "webhook_endpoints.create": self.create_webhook_endpoint,
            "webhook_endpoints.list": self.list_webhook_endpoints,
            "webhook_endpoints.update": self.update_webhook_endpoint,
        }

    def create_account(self, params: dict, as_account: str) -> dict:
        _known(params, {"type", "country", "email", "capabilities", "business_profile", "metadata", "expand"})
        if as_account != PLATFORM:
            raise StripeError(400, "Connected accounts cannot create other accounts.")
        kind = _text(params, "type", required=False) or "express"
        if kind not in ("express", "custom", "standard"):
            raise StripeError(400, "Invalid type: must be one of custom, express, or standard", param="type")
        requested = {
            name for name, wish in (params.get("capabilities") or {}).items() if (wish or {}).get("requested") == "true"
        }
        account = {
            "id": _id("acct"),
            "object": "account",
            "business_profile": {"name": (params.get("business_profile") or {}).get("name"), "url": None},
            "business_type": None,
            "capabilities": {name: "inactive" for name in sorted(requested)},
            "charges_enabled": False,
            "country": _text(params, "country", required=False) or "US",
            "created": int(time.time()),
            "default_currency": "usd",
            "details_submitted": False,
            "email": _text(params, "email", required=False),
            "metadata": _metadata(params),
            "payouts_enabled": False,
            "requirements": {
                "current_deadline": None,
                "currently_due": list(ONBOARDING_DUE),
                "disabled_reason": "requirements.past_due",
                "errors": [],
                "eventually_due": list(ONBOARDING_DUE),
                "past_due": list(ONBOARDING_DUE),
                "pending_verification": [],
            },
            "type": kind,
        }
        self.accounts[account["id"]] = account
        return account

    def retrieve_account(self, params: dict, as_account: str, id: str) -> dict:
        _known(params, {"expand"})
        if id not in self.accounts or as_account not in (PLATFORM, id):
            raise _missing("account", id)
        return self.accounts[id]

    def retrieve_payment_intent(self, params: dict, as_account: str, id: str) -> dict | None:
        """An intent that paid one of `charges` (the `charge` control); any other is upstream's."""
        intent = self.intents.get(id)
        if intent is None:
            return None
        _known(params, {"expand"})
        expanded = "latest_charge" in (params.get("expand") or [])
        charge = self.charges[intent["latest_charge"]]
        return {**intent, "latest_charge": charge if expanded else charge["id"]}

    def list_disputes(self, params: dict, as_account: str) -> dict:
        """The disputes of `charges` (localstripe has none: a charge of its has no dispute)."""
        _known(params, {"charge", "payment_intent", "limit", "starting_after"})
        found = [
            {"id": dispute_id, **dispute}
            for dispute_id, dispute in reversed(list(self.disputes.items()))
            if all(dispute[name] == params[name] for name in ("charge", "payment_intent") if name in params)
        ]
        return _page(found, params, "/v1/disputes")

    def create_account_link(self, params: dict, as_account: str) -> dict:
        _known(params, {"account", "type", "refresh_url", "return_url", "collect", "expand"})
        account_id = _text(params, "account")
        if account_id not in self.accounts:
            raise _missing("account", account_id, "account")
        if _text(params, "type") not in ("account_onboarding", "account_update"):
            raise StripeError(400, "Invalid type: must be one of account_onboarding or account_update", param="type")
        for name in ("refresh_url", "return_url"):
            _url(params, name)
        now, token = int(time.time()), secrets.token_urlsafe(12)
        self.links[token] = {**params, "expires_at": now + LINK_SECONDS}
        url = f"{self.url}/_connect/setup/{account_id}/{token}"
        return {"object": "account_link", "created": now, "expires_at": now + LINK_SECONDS, "url": url}

    def create_transfer(self, params: dict, as_account: str) -> dict:
        _known(
            params,
            {
                "amount",
                "currency",
                "destination",
                "transfer_group",
                "metadata",
                "description",
                "source_transaction",
                "expand",
            },
        )
        amount = _integer(params, "amount")
        currency = _text(params, "currency")
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise StripeError(400, f"Invalid currency: {currency}.", param="currency")
        source = _text(params, "source_transaction", required=False)
        destination = _text(params, "destination")
        account = self.accounts.get(destination)
        if account is None or destination == as_account:
            raise _missing("destination", destination, "destination")
        if account["capabilities"].get("transfers") != "active":
            raise StripeError(
                400,
                "Your destination account needs to have at least one of the following capabilities enabled: "
                "transfers, crypto_transfers, legacy_payments",
                param="destination",
                code="insufficient_capabilities_for_transfer",
            )
        if source is not None:
            self._check_source(source, amount, currency)
        transfer_id = _id("tr")
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": _id("txn"),
            "created": int(time.time()),
            "currency": currency,
            "description": _text(params, "description", required=False),
            "destination": destination,
            "destination_payment": _id("py"),
            "livemode": False,
            "metadata": _metadata(params),
            "reversals": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/transfers/{transfer_id}/reversals",
            },
            "reversed": False,
            "source_transaction": source,
            "source_type": "card",
            "transfer_group": _text(params, "transfer_group", required=False),
        }
        self.transfers[transfer_id] = transfer
        return transfer

    def _check_source(self, charge_id: str, amount: int, currency: str) -> None:
        """Stripe's rules for a transfer made from a charge: the charge is the platform's, the
        transfer is in the currency the charge settled in (its balance transaction's), and all
        transferred from it stays within its amount."""
        charge = self._source_charge(charge_id)
        settled = charge["balance_transaction"]["currency"]
        if settled != currency:
            message = f"The transfer's currency ({currency}) must be the one its source charge settled in ({settled})."
            raise StripeError(400, message, param="currency")
        taken = sum(t["amount"] for t in self.transfers.values() if t["source_transaction"] == charge_id)
        if taken + amount > charge["amount"]:
            raise StripeError(
                400,
                f"Transfers from {charge_id} would exceed its amount ({taken} + {amount} > {charge['amount']}).",
                param="amount",
            )

    def _source_charge(self, charge_id: str) -> dict:
        """A charge of the platform's, with its balance transaction: one of `charges`, else localstripe's."""
        if charge_id in self.charges:
            return self.charges[charge_id]
        path = f"/v1/charges/{charge_id}?expand[]=balance_transaction"
        status, _, body = self._pass_on("GET", path, {"authorization": UPSTREAM_KEY}, b"")
        if status != 200:
            raise _missing("charge", charge_id, "source_transaction")
        return json.loads(body)

    def list_transfers(self, params: dict, as_account: str) -> dict:
        _known(params, {"transfer_group", "destination", "limit", "starting_after", "expand"})
        found = [
            transfer
            for transfer in reversed(list(self.transfers.values()))  # newest first
            if all(transfer[name] == params[name] for name in ("transfer_group", "destination") if name in params)
        ]
        return _page(found, params, "/v1/transfers")

    def retrieve_transfer(self, params: dict, as_account: str, id: str) -> dict:
        _known(params, {"expand"})
        if id not in self.transfers:
            raise _missing("transfer", id)
        return self.transfers[id]

    def create_reversal(self, params: dict, as_account: str, id: str) -> dict:
        _known(params, {"amount", "metadata", "description", "refund_application_fee", "expand"})
        transfer = self.transfers.get(id)
        if transfer is None:
            raise _missing("transfer", id)
        left = transfer["amount"] - transfer["amount_reversed"]
        if left == 0:
            raise StripeError(400, f"Transfer {id} is already fully reversed.", code="transfer_already_reversed")
        amount = _integer(params, "amount", required=False) or left
        if amount > left:
            raise StripeError(
                400, f"You can only reverse up to {left} of this transfer ({amount} requested).", param="amount"
            )
        return self._reverse(transfer, amount, _metadata(params))

    def _reverse(self, transfer: dict, amount: int, metadata: dict[str, str]) -> dict:
        reversal = {
            "id": _id("trr"),
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": _id("txn"),
            "created": int(time.time()),
            "currency": transfer["currency"],
            "destination_payment_refund": _id("pyr"),
            "metadata": metadata,
            "source_refund": None,
            "transfer": transfer["id"],
        }
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        transfer["reversals"]["total_count"] += 1
        return reversal

    def list_reversals(self, params: dict, as_account: str, id: str) -> dict:
        _known(params, {"limit", "starting_after", "expand"})
        if id not in self.transfers:
            raise _missing("transfer", id)
        return _page(self.transfers[id]["reversals"]["data"], params, f"/v1/transfers/{id}/reversals")

    def create_webhook_endpoint(self, params: dict, as_account: str) -> dict:
        _known(params, {"url", "enabled_events", "api_version", "connect", "description", "metadata"})
        endpoint = {
            "id": _id("we"),
            "object": "webhook_endpoint",
            "api_version": _text(params, "api_version", required=False),
            "application": None,
            "created": int(time.time()),
            "description": _text(params, "description", required=False),
            "enabled_events": _events(params, required=True),
            "livemode": False,
            "metadata": _metadata(params),
            "status": "enabled",
            "url": _url(params, "url"),
        }
        self.webhook_endpoints[endpoint["id"]] = {**endpoint, "connect": params.get("connect") == "true"}
        return {**endpoint, "secret": f"whsec_{secrets.token_urlsafe(24)}"}  # shown this once

    def list_webhook_endpoints(self, params: dict, as_account: str) -> dict:
        _known(params, {"limit", "starting_after"})
        found = [_without_connect(endpoint) for endpoint in reversed(list(self.webhook_endpoints.values()))]
        return _page(found, params, "/v1/webhook_endpoints")

    def update_webhook_endpoint(self, params: dict, as_account: str, id: str) -> dict:
        _known(params, {"url", "enabled_events", "description", "disabled", "metadata"})
        endpoint = self.webhook_endpoints.get(id)
        if endpoint is None:
            raise _missing("webhook endpoint", id)
        if "enabled_events" in params:
            endpoint["enabled_events"] = _events(params, required=False)
        if "url" in params:
            endpoint["url"] = _url(params, "url")
        if "disabled" in params:
            endpoint["status"] = "disabled" if params["disabled"] == "true" else "enabled"
        endpoint["metadata"].update(_metadata(params))
        return _without_connect(endpoint)

    # --- serving a request ------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes, str]:
        """(status, headers, body, the operation's name) for one request: through the gate, then
        served here, or by `upstream`. Test controls (a path segment starting with `_`, such as
        localstripe's `/_config/...` and the onboarding page) pass unchecked."""
        split = urllib.parse.urlsplit(target)
        if any(segment.startswith("_") for segment in split.path.split("/")):
            if split.path.startswith("/_connect/setup/"):
                return (*self._visit_link(split.path), "control")
            return (*self._pass_on(method, target, headers, body), "control")
        op = stripe_gate.operation(method, split.path)
        name = op.name if op else f"{method} {split.path}"
        try:
            if not headers.get("authorization", "").startswith("Bearer sk_"):
                raise StripeError(401, "You did not provide an API key.")
            pairs = urllib.parse.parse_qsl(body.decode() if method == "POST" else split.query, keep_blank_values=True)
            params = decode_form(pairs)
            self._gate(op, method, split.path, headers, params)
            as_account = headers.get("stripe-account") or PLATFORM
            key = headers.get("idempotency-key") if method == "POST" else None
            fingerprint = json.dumps([method, split.path, sorted(pairs)])
            with self._lock:
                self.calls[(method, op.name)] += 1
                self.received.append((op.name, params))
            handler = self.routes().get(op.name)

            def serve() -> tuple[int, dict, bytes]:
                served = self._serve(op, handler, split.path, params, as_account) if handler else None
                return served or self._pass_on(method, target, headers, body, translate=TRANSLATED.get(op.name))

            return (*self._idempotently(as_account, key, fingerprint, serve), name)
        except StripeError as error:
            if isinstance(error, NotModelled):
                with self._lock:
                    self.refusals.append({"method": method, "path": split.path, **error.body["error"]})
            return error.status, {}, json.dumps(error.body).encode(), name

    def _gate(self, op, method: str, path: str, headers: dict[str, str], params: dict) -> None:
        """Refuse, as Stripe would and recorded in `refusals`, what the pinned API version refuses."""
        if op is None:
            refusal = StripeError(404, f"Unrecognized request URL ({method}: {path}).")
        elif headers.get("stripe-version") != stripe_gate.API_VERSION:
            version = headers.get("stripe-version")
            refusal = StripeError(400, f"Requests here speak Stripe-Version {stripe_gate.API_VERSION}, not {version}.")
        elif (found := stripe_gate.refusal(params, op)) is not None:
            refusal = StripeError(400, found.message, param=found.param, code=found.code)
        else:
            return
        with self._lock:
            self.refusals.append({"method": method, "path": path, **refusal.body["error"]})
        raise refusal

    def _idempotently(
        self, as_account: str, key: str | None, fingerprint: str, serve: Callable
    ) -> tuple[int, dict, bytes]:
        """`serve()`, or, for a key seen before (per account, until forgotten), the first answer
        again (`Idempotent-Replayed: true`); with other parameters a 400 `idempotency_error`, and
        while the first is still being served a 409. As at Stripe (API v1), the first answer is
        kept once the endpoint began, whatever it was (a refusal, a 500); a request the gate
        refused, or one still in flight, saves nothing."""
        if not key:
            return serve()
        with self._lock:
            remembered = self._remembered.get((as_account, key))
            if remembered is not None:
                if remembered[0] != fingerprint:
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                        kind="idempotency_error",
                    )
                return remembered[1], {"Idempotent-Replayed": "true"}, remembered[2]
            if (as_account, key) in self._in_flight:
                raise StripeError(
                    409,
                    "There is currently another in-progress request using this Idempotent Key (that probably means "
                    "you submitted twice, and the other request is still going through): " + key,
                    kind="idempotency_error",
                    code="idempotency_key_in_use",
                )
            self._in_flight.add((as_account, key))
        try:
            try:
                status, headers, answer = serve()
            except StripeError as error:
                if isinstance(error, NotModelled):
                    raise
                status, headers, answer = error.status, {}, json.dumps(error.body).encode()
            with self._lock:
                self._remembered[(as_account, key)] = (fingerprint, status, answer)
            return status, headers, answer
        finally:
            with self._lock:
                self._in_flight.discard((as_account, key))

    def _serve(self, op, handler: Callable, path: str, params: dict, as_account: str) -> tuple[int, dict, bytes] | None:
        """The handler's answer; None when the handler leaves the request to `upstream`."""
        with self._lock:
            if as_account != PLATFORM and as_account not in self.accounts:
                no_access = f"The provided key has no access to account '{as_account}' (or it does not exist)."
                raise StripeError(403, no_access, code="account_invalid")
            answer = handler(params, as_account, *op.pattern.fullmatch(path).groups())
            return None if answer is None else (200, {}, json.dumps(answer).encode())

    def _visit_link(self, path: str) -> tuple[int, dict, bytes]:
        """The seller's browser on the link: it finishes onboarding and goes back to the return_url
        (with the account's `account.updated` delivered to `webhook_url`, if set); a used or expired
        link goes to the refresh_url."""
        token = path.rsplit("/", 1)[-1]
        with self._lock:
            link = self.links.pop(token, None)
        if link is None:
            return 404, {}, b"This link was used or never existed."
        if time.time() > link["expires_at"]:
            return 302, {"Location": link["refresh_url"]}, b""
        self.finish_onboarding(link["account"])
        if self.webhook_url:
            self.deliver(self.account_updated(link["account"]))
        return 302, {"Location": link["return_url"]}, b""

    def _pass_on(
        self, method: str, target: str, headers: dict[str, str], body: bytes, *, translate: dict[str, str] | None = None
    ) -> tuple[int, dict, bytes]:
        """The request as `upstream` (localstripe) answers it; `translate` renames parameters it
        knows by an older name (`allowed_payment_method_types` -> `payment_method_types`)."""
        if self.upstream is None:
            message = f"Unrecognized request URL ({method}: {urllib.parse.urlsplit(target).path})."
            return 404, {}, json.dumps({"error": {"type": "invalid_request_error", "message": message}}).encode()
        if translate and method == "POST":
            pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
            body = urllib.parse.urlencode([(_renamed(key, translate), value) for key, value in pairs]).encode()
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k not in HOP_BY_HOP and k not in ("host", "content-length")}
            connection.request(method, target, body=body or None, headers=sent)
            answer = connection.getresponse()
            passed = {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
            return answer.status, passed, answer.read()
        finally:
            connection.close()

    # --- test controls ------------------------------------------------------------------------

    def charge(
        self, charge_id: str, amount: int, currency: str, *, intent_id: str | None = None, refunded: int = 0,
        dispute: str | None = None,
    ) -> dict:  # fmt: skip
        """A charge the platform has, for a run without localstripe (transfers may be made from it),
        and, with `intent_id`, the succeeded PaymentIntent it paid (read back before a transfer);
        `dispute` (a status: needs_response, won, lost...) gives it a dispute of its whole amount."""
        with self._lock:
            if dispute is not None:
                self.disputes[_id("dp")] = {
                    "object": "dispute",
                    "amount": amount,
                    "charge": charge_id,
                    "created": int(time.time()),
                    "currency": currency,
                    "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False},
                    "is_charge_refundable": False,
                    "livemode": False,
                    "metadata": {},
                    "payment_intent": intent_id,
                    "reason": "fraudulent",
                    "status": dispute,
                }
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_refunded": refunded,
                "currency": currency,
                "disputed": dispute is not None,
                "payment_intent": intent_id,
                "refunded": refunded == amount,
                "balance_transaction": {"object": "balance_transaction", "amount": amount, "currency": currency},
            }
            if intent_id is not None:
                self.intents[intent_id] = {
                    "id": intent_id,
                    "object": "payment_intent",
                    "amount": amount,
                    "currency": currency,
                    "latest_charge": charge_id,
                    "metadata": {},
                    "status": "succeeded",
                }
            return self.charges[charge_id]

    def finish_onboarding(self, account_id: str) -> dict:
        """What the seller does on the onboarding page: details in, nothing due, transfers and
        payouts enabled (charges only if card payments were asked for)."""
        with self._lock:
            account = self.accounts[account_id]
            account["details_submitted"] = True
            account["capabilities"] = {name: "active" for name in account["capabilities"]}
            account["charges_enabled"] = account["capabilities"].get("card_payments") == "active"
            account["payouts_enabled"] = True
            account["requirements"].update(currently_due=[], eventually_due=[], past_due=[], disabled_reason=None)
            return json.loads(json.dumps(account))

    def require(self, account_id: str, *fields: str) -> dict:
        """Stripe asking for more: the fields due, payouts and transfers off until they are given."""
        with self._lock:
            account = self.accounts[account_id]
            account["capabilities"] = {name: "inactive" for name in account["capabilities"]}
            account["payouts_enabled"] = account["charges_enabled"] = False
            account["requirements"].update(
                currently_due=list(fields), past_due=list(fields), disabled_reason="requirements.past_due"
            )
            return json.loads(json.dumps(account))

    def event(self, event_type: str, data: dict, *, account: str | None, **extra) -> dict:
        """A Stripe event of `event_type` about `data` (of the connected `account`, if given)."""
        event = {
            "id": _id("evt"),
            "object": "event",
            "api_version": stripe_gate.API_VERSION,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(data)), **extra},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        if account:
            event["account"] = account
        return event

    def account_updated(self, account_id: str) -> dict:
        """The `account.updated` Stripe sends about the account as it is now."""
        return self.event("account.updated", self.accounts[account_id], account=account_id)

    def payout_event(self, account_id: str, status: str, amount: int, currency: str, **changes) -> dict:
        """A `payout.<status>` (paid or failed) of the connected account to its bank."""
        now = int(time.time())
        payout = {
            "id": _id("po"),
            "object": "payout",
            "amount": amount,
            "arrival_date": now + 86400,
            "automatic": True,
            "balance_transaction": _id("txn"),
            "created": now,
            "currency": currency,
            "destination": _id("ba"),
            "failure_code": "account_closed" if status == "failed" else None,
            "failure_message": "The bank account has been closed." if status == "failed" else None,
            "method": "standard",
            "status": status,
            "type": "bank_account",
            **changes,
        }
        return self.event(f"payout.{status}", payout, account=account_id)

    def reversed_in_dashboard(self, transfer_id: str, amount: int) -> dict:
        """Someone reversing `amount` of a transfer in Stripe's dashboard: the `transfer.reversed`
        Stripe then sends (a platform event: transfers are the platform's objects)."""
        with self._lock:
            transfer = self.transfers[transfer_id]
            self._reverse(transfer, amount, {})
            return self.event("transfer.reversed", transfer, account=None)

    def sign(self, event: dict, *, secret: str | None = None, at: int | None = None) -> tuple[bytes, str]:
        """The event's body and its Stripe-Signature header (the Connect endpoint's secret)."""
        payload = json.dumps(event).encode()
        timestamp = int(time.time()) if at is None else at
        key = (secret or self.webhook_secret).encode()
        signature = hmac.new(key, f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
        return payload, f"t={timestamp},v1={signature}"

    def deliver(self, event: dict) -> int:
        """Post the event, signed, to `webhook_url` as Stripe does; the status it was answered."""
        payload, signature = self.sign(event)
        target = urllib.parse.urlsplit(self.webhook_url)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}
            connection.request("POST", target.path, body=payload, headers=headers)
            answer = connection.getresponse()
            answer.read()
            return answer.status
        finally:
            connection.close()

    def lose_answers_to(self, route: str, times: int = 1) -> None:
        """The next `times` requests to `route` (e.g. "transfers.create") are carried out, then
        their connection is dropped without an answer, as when a network fails mid-call."""
        with self._lock:
            self._lost[route] += times

    def answer_again(self) -> None:
        """Stop dropping answers (`lose_answers_to`)."""
        with self._lock:
            self._lost.clear()

    def _answer_lost(self, route: str) -> bool:
        with self._lock:
            if self._lost[route] > 0:
                self._lost[route] -= 1
                return True
        return False

    def transfers_to(self, account_id: str) -> list[dict]:
        with self._lock:
            return [dict(t) for t in self.transfers.values() if t["destination"] == account_id]

    def refused(self) -> list[dict]:
        """What the gate refused since the last call (each a Stripe error with the method and path),
        forgotten as it is read: a test that expects a refusal takes it, and every test ends with
        none left (conftest)."""
        with self._lock:
            refused, self.refusals = self.refusals, []
            return refused

    def forget_idempotency_keys(self) -> None:
        """As if 24 hours had passed: Stripe prunes keys after a day (each test starts afresh,
        with ids its empty database hands out again)."""
        with self._lock:
            self._remembered.clear()


def _handler_for(stand_in: StripeConnect) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra, answer, route = stand_in.answer(self.command, self.path, headers, body)
            if stand_in._answer_lost(route):
                self.close_connection = True  # done, and never told
                return
            self.send_response(status)
            if "content-type" not in {key.lower() for key in extra}:
                self.send_header("Content-Type", "application/json")
            for key, value in extra.items():
                self.send_header(key, value)
            if "request-id" not in {key.lower() for key in extra}:
                self.send_header("Request-Id", _id("req"))
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, *args) -> None:  # quiet
            pass

    return Handler


def main() -> None:
    """`make dev`'s Stripe: this stand-in on a port, in front of localstripe, so that development
    meets the gate and the Connect endpoints the tests meet. Refusals are also written to stderr."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="localstripe's base URL")
    parser.add_argument("--connect-webhook-url", help="where the Connect endpoint's events go")
    parser.add_argument("--connect-webhook-secret", required=True)
    args = parser.parse_args()
    stand_in = StripeConnect(webhook_secret=args.connect_webhook_secret, upstream=args.upstream, port=args.port)
    stand_in.webhook_url = args.connect_webhook_url
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"Stripe stand-in on {stand_in.url}, in front of {args.upstream}", flush=True)
    while not stopped.wait(0.5):
        for refusal in stand_in.refused():
            print(
                f"refused, as Stripe {stripe_gate.API_VERSION} would: {json.dumps(refusal)}",
                file=sys.stderr,
                flush=True,
            )
    stand_in.close()


if __name__ == "__main__":
    main()
