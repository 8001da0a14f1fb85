"""The `admin_audit_log` table lives in `nexus.audit`, where every domain records its admin writes."""

from nexus.audit import AdminAuditEntry

__all__ = ["AdminAuditEntry"]
