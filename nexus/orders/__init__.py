"""Orders: placing them against live stock, idempotently, and moving them through their lifecycle."""
