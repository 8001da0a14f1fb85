"""Background jobs: work that must not hold a web request (emails, reports), on Dramatiq.

A job caused by a database change is an `outbox` row written in the same transaction as the
change (`outbox.enqueue`); after the commit its id is handed to the queue; the worker runs the
job's handler and marks the row done in the transaction of the handler's effect. Domains
register their handlers with `@outbox.job("name")`; this package imports no domain.
"""
