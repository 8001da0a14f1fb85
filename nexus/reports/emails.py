"""The "your report is ready" email: plain text plus HTML."""

from nexus.emails import send_email
from nexus.reports.models import UserReportHistory

TEXT = """Hello,

Your sales report #{id} ({date_from} to {date_to}, {rows} orders) is ready.
Download it from your report history, or at {path}.
"""

HTML = """<!doctype html>
<html><body style="font-family: sans-serif">
<p>Hello,</p>
<p>Your sales report #{id} ({date_from} to {date_to}, {rows} orders) is ready.</p>
<p>Download it from your report history, or at <code>{path}</code>.</p>
</body></html>
"""


def send_report_ready(email: str, report: UserReportHistory) -> None:
    fields = {
        "id": report.id,
        "rows": report.row_count,
        "path": f"/api/v1/reports/{report.id}/download",
        **report.parameters,
    }
    send_email(f"Your Nexus sales report #{report.id} is ready", email, TEXT.format(**fields), HTML.format(**fields))
