"""The layout DESIGN.md asks for, checked: dependencies between domains point one way."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

NEXUS = Path(__file__).resolve().parent.parent / "nexus"
DOMAINS = sorted(path.name for path in NEXUS.iterdir() if (path / "__init__.py").exists() and path.name != "cli")


def imported_domains(domain: str) -> set[str]:
    """The other domains that any module of `domain` imports."""
    found = set()
    for module in (NEXUS / domain).glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found |= {name.split(".")[1] for name in names if name.startswith("nexus.") and name.count(".") >= 1}
    return (found & set(DOMAINS)) - {domain}


def test_no_two_domains_import_each_other_even_through_others():
    graph = {domain: imported_domains(domain) for domain in DOMAINS}

    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        raise AssertionError(f"domains import each other: {' -> '.join(cycle.args[1])}") from None
    assert set(order) == set(DOMAINS)


def test_payments_orchestrate_orders_and_orders_know_nothing_of_payments():
    assert "orders" in imported_domains("payments")
    assert "payments" not in imported_domains("orders")


def test_payouts_build_on_orders_payments_stores_and_jobs_and_none_of_them_knows_payouts():
    assert {"orders", "payments", "stores", "jobs"} <= imported_domains("payouts")
    for lower in ("orders", "payments", "stores", "jobs"):
        assert "payouts" not in imported_domains(lower), lower
