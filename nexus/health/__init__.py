"""Liveness and readiness for ops and Render's health check."""
