"""The Stripe API version the pinned stripe-python speaks, as a gate in front of the tests' Stripe
stand-ins (not a test module).

localstripe models an old Stripe API and our Connect stand-in answers what we ask, so neither would
notice a request today's Stripe refuses. stripe-python is generated from Stripe's OpenAPI document
for one API version (`API_VERSION`): each service method names the path it calls and its parameters'
TypedDict in `stripe.params`. `operation(method, path)` finds the TypedDict of a request from those
services (read with `ast`, so nothing of them runs), and `refusal(params, operation)` says what that
version refuses in a request's decoded form, as Stripe says it: a parameter it does not take
(`parameter_unknown`), a required one missing (`parameter_missing`), or a value not of the
parameter's type or outside its enum (`parameter_invalid_*`), naming the parameter in Stripe's
bracket notation (`capabilities[transfers][requested]`).

A value is checked as Stripe's form encoding carries it: strings throughout, `true`/`false` for
booleans, lists as indexed keys (`expand[0]`). An enum written `Literal[...]|str` in the types is
open (Stripe may add values) and takes any string.
"""

import ast
import functools
import importlib
import re
import threading
import types
import typing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import stripe
import typing_extensions
from stripe._api_version import _ApiVersion
from stripe._request_options import RequestOptions
from stripe._stripe_context import StripeContext
from stripe._stripe_object import UntypedStripeObject

API_VERSION = _ApiVersion.CURRENT
OPTIONS = frozenset(RequestOptions.__annotations__)  # how stripe-python is asked, not what Stripe is sent
# What the generated annotations name but import only for type checkers.
NAMES = {**vars(typing), "StripeContext": StripeContext, "UntypedStripeObject": UntypedStripeObject}


@dataclass(frozen=True)
class Operation:
    method: str  # GET, POST, DELETE
    template: str  # /v1/transfers/{transfer}/reversals
    name: str  # transfer_reversals.create: as StripeClient's v1 services name it
    params: type | None  # its TypedDict (None: it takes no parameters)

    @functools.cached_property
    def pattern(self) -> re.Pattern:
        return re.compile(re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(self.template)))


@dataclass(frozen=True)
class Refusal:
    """What Stripe answers a request it refuses: 400, `invalid_request_error`."""

    message: str
    param: str
    code: str


def operation(method: str, path: str) -> Operation | None:
    """The operation of the pinned version that `method` on `path` is, if there is one."""
    for candidate in _operations().get(method.upper(), []):
        if candidate.pattern.fullmatch(path):
            return candidate
    return None


def refusal(params: dict[str, Any], op: Operation) -> Refusal | None:
    """What the pinned version refuses in `params` (decoded from Stripe's form encoding), if anything."""
    if op.params is None:
        name = next(iter(params), None)
        return None if name is None else _unknown(name)
    return _check_fields(params, op.params, prefix="")


# --- the operations, from stripe-python's services ----------------------------------------------


def _operations() -> dict[str, list[Operation]]:
    """Every v1 operation the services call, by method, read once (the stand-in's threads ask at
    once, and `ast.parse` is not safe to run on several threads at a time)."""
    with _READING:
        return _read_operations()


_READING = threading.Lock()


@functools.cache
def _read_operations() -> dict[str, list[Operation]]:
    """Paths with fewer placeholders first, so a literal segment (`/v1/payment_intents/search`)
    wins over an id (`/v1/payment_intents/{intent}`)."""
    found: dict[str, list[Operation]] = {}
    root = Path(stripe.__file__).parent
    for source in sorted(root.rglob("_*_service.py")):
        if "v2" in source.relative_to(root).parts:
            continue  # the v2 APIs speak JSON, and we call none of them
        for op in _operations_in(source, root):
            found.setdefault(op.method, []).append(op)
    for ops in found.values():
        ops.sort(key=lambda op: (op.template.count("{"), -len(op.template)))
    return found


def _operations_in(source: Path, root: Path) -> list[Operation]:
    tree = ast.parse(source.read_text())
    imports = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stripe.params")
        for alias in node.names
    }
    ops = []
    for service in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for method in (node for node in service.body if isinstance(node, ast.FunctionDef)):
            call = _request_call(method)
            if call is None:
                continue
            verb, template = call
            params_type = _params_name(method)
            params = getattr(importlib.import_module(imports[params_type]), params_type) if params_type else None
            ops.append(Operation(verb.upper(), template, f"{_resource(service.name)}.{method.name}", params))
    return ops


def _resource(service: str) -> str:
    """`transfer_reversals` of `TransferReversalService`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", service.removesuffix("Service")).lower() + "s"


def _request_call(method: ast.FunctionDef) -> tuple[str, str] | None:
    """`("post", "/v1/transfers/{transfer}/reversals")` of the method's `self._request(...)` call."""
    for node in ast.walk(method):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_request"):
            continue
        verb, path = node.args[:2]
        if isinstance(path, ast.Call):  # "/v1/transfers/{transfer}".format(transfer=...)
            path = path.func.value
        return verb.value, path.value
    return None


def _params_name(method: ast.FunctionDef) -> str | None:
    """The name of the TypedDict annotating the method's `params` (`Optional["TransferListParams"]`)."""
    for arg in method.args.args + method.args.kwonlyargs:
        if arg.arg == "params":
            return re.search(r"(\w+Params)\b", ast.unparse(arg.annotation)).group(1)
    return None


# --- the values ----------------------------------------------------------------------------------


# Parameters the pinned version no longer takes, refused with a code of their own (Stripe's changelog,
# "Removes the payment method types parameter from Payment Intents and Setup Intents", endive 2026-09-30).
REMOVED = {"payment_method_types": "payment_method_types_no_longer_supported"}


def _unknown(name: str) -> Refusal:
    if name in REMOVED:
        message = f"The parameter {name} is no longer supported in this API version; use allowed_payment_method_types."
        return Refusal(message, name, REMOVED[name])
    return Refusal(f"Received unknown parameter: {name}", name, "parameter_unknown")


def _invalid(name: str, message: str, code: str = "parameter_invalid") -> Refusal:
    return Refusal(message, name, code)


@functools.cache
def _fields(typed_dict: type) -> tuple[dict[str, Any], frozenset[str]]:
    """The TypedDict's fields and their types (request options left out), and the required ones."""
    hints = typing.get_type_hints(typed_dict, localns=NAMES)
    fields = {name: hint for name, hint in hints.items() if name not in OPTIONS}
    return fields, frozenset(typed_dict.__required_keys__) - OPTIONS


def _check_fields(value: Any, typed_dict: type, *, prefix: str) -> Refusal | None:
    fields, required = _fields(typed_dict)
    if not isinstance(value, dict):
        return _invalid(prefix, f"Invalid object: {prefix} must be a hash of parameters.", "parameter_invalid_object")
    for name, item in value.items():
        full = f"{prefix}[{name}]" if prefix else name
        if name not in fields:
            return _unknown(full)
        problem = _check(item, fields[name], name=full)
        if problem:
            return problem
    for name in sorted(required - set(value)):
        full = f"{prefix}[{name}]" if prefix else name
        return Refusal(f"Missing required param: {full}.", full, "parameter_missing")
    return None


def _check(value: Any, hint: Any, *, name: str) -> Refusal | None:
    """Whether `value`, as the form carries it, is of type `hint` (None), or the refusal."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if hint is UntypedStripeObject or origin is UntypedStripeObject:  # a hash of whatever it holds
        origin, args = dict, (str, args[0] if args else Any)
    if origin in (typing.Union, types.UnionType):
        problems = [_check(value, arm, name=name) for arm in args]
        if any(problem is None for problem in problems):
            return None
        return max(problems, key=lambda problem: len(problem.param))  # the deepest says most
    if origin is typing.Literal:
        if isinstance(value, str) and value in {
            str(arg).lower() if isinstance(arg, bool) else str(arg) for arg in args
        }:
            return None
        allowed = ", ".join(repr(arg) for arg in args[:8]) + (f" (or {len(args) - 8} more)" if len(args) > 8 else "")
        return _invalid(name, f"Invalid {name}: must be one of {allowed}", "parameter_invalid_enum")
    if origin is list:
        if not isinstance(value, list):
            return _invalid(name, f"Invalid array: {name}", "parameter_invalid_array")
        for index, item in enumerate(value):
            problem = _check(item, args[0], name=f"{name}[{index}]")
            if problem:
                return problem
        return None
    if origin is dict:
        if isinstance(value, list):  # keys 0, 1, ... decode as a list; a hash may have them too
            value = {str(index): item for index, item in enumerate(value)}
        if not isinstance(value, dict):
            return _invalid(name, f"Invalid hash: {name}", "parameter_invalid_hash")
        return next((p for key, item in value.items() if (p := _check(item, args[1], name=f"{name}[{key}]"))), None)
    if typing_extensions.is_typeddict(hint):
        return _check_fields(value, hint, prefix=name)
    return _check_scalar(value, hint, name=name)


def _check_scalar(value: Any, hint: type, *, name: str) -> Refusal | None:
    if not isinstance(value, str):
        return _invalid(name, f"Invalid {hint.__name__}: {name} must not be a hash or an array", "parameter_invalid")
    if hint is str:
        return None
    if hint is bool:
        ok = value in ("true", "false")
    elif hint is int:
        ok = re.fullmatch(r"-?\d+", value) is not None
    elif hint in (float, Decimal):
        try:
            Decimal(value)
            ok = True
        except InvalidOperation:
            ok = False
    else:
        raise TypeError(f"the gate does not know the type {hint!r} of {name}")
    if ok:
        return None
    return _invalid(name, f"Invalid {hint.__name__}: {value}", f"parameter_invalid_{hint.__name__.lower()}")
