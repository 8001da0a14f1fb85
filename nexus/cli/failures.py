"""Batch commands (crons) go on past an item that fails: the command rolls it back, it is logged
here, and the command exits 1 at the end, so Render marks the run failed."""

import logging

import click

from nexus.errors import DomainError

log = logging.getLogger("nexus.cli")


def failed_item(what: str, error: Exception) -> str:
    """Log why an item failed (with the traceback when it is a bug rather than a dependency
    saying no), and return the reason."""
    reason = error.message if isinstance(error, DomainError) else f"{type(error).__name__}: {error}"
    log.error("%s failed: %s", what, reason, exc_info=not isinstance(error, DomainError))
    return reason


def finish(changed: list[str], failed: list[str], summary: str) -> None:
    """End a batch command: each change and failure on a line of its own, then `summary`; exit 1
    if any item failed."""
    for line in changed + failed:
        click.echo(line)
    click.echo(summary)
    if failed:
        raise SystemExit(1)
