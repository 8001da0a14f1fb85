"""Wire formats of reports."""

from datetime import date, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from nexus.pagination import page_of


def a_year_after(day: date) -> date:
    """The same date next year (29 February gives 1 March)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28) + timedelta(days=1)


# Days from then on cannot be reported on: a report ends at the midnight after date_to, at most a
# year after date_from, and the calendar (Python's, 9999-12-31) has to hold both.
DAYS = validate.Range(max=date(9998, 12, 31))


class ReportCreateSchema(Schema):
    type = fields.String(load_default="sales", validate=validate.OneOf(["sales"]))
    date_from = fields.Date(required=True, validate=DAYS, metadata={"description": "First day, UTC, included."})
    date_to = fields.Date(
        required=True,
        validate=DAYS,
        metadata={"description": "Last day, UTC, included; at most a year after date_from."},
    )
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "json"]))

    @validates_schema
    def _range(self, data, **kwargs) -> None:
        if "date_from" not in data or "date_to" not in data:
            return
        if data["date_to"] < data["date_from"]:
            raise ValidationError("date_to is before date_from.", "date_to")
        if data["date_to"] >= a_year_after(data["date_from"]):
            raise ValidationError(
                "A report covers at most a year: date_to must be before the same date next year.", "date_to"
            )


class ReportParametersSchema(Schema):
    date_from = fields.String(required=True, metadata={"format": "date"})
    date_to = fields.String(required=True, metadata={"format": "date"})


class ReportSchema(Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    store_id = fields.Integer(required=True)
    type = fields.String(required=True, validate=validate.OneOf(["sales"]))
    format = fields.String(required=True, validate=validate.OneOf(["csv", "json"]))
    parameters = fields.Nested(ReportParametersSchema, required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(["pending", "ready", "failed"]),
        metadata={"description": "pending while a job builds it; then ready (its user gets an email) or failed."},
    )
    row_count = fields.Integer(required=True)
    error = fields.String(required=True, allow_none=True, metadata={"description": "Why it failed."})
    created_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(required=True, allow_none=True)
    download_url = fields.Function(
        lambda report: f"/api/v1/reports/{report.id}/download", required=True, metadata={"type": "string"}
    )


ReportPageSchema = page_of(ReportSchema)
