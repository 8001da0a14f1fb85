"""`/api/v1/stores/{id}/reports`, `/api/v1/reports/{id}`, and your history at `/api/v1/profile/me/reports`."""

from flask import Response
from flask.views import MethodView
from flask_jwt_extended import get_current_user

from nexus.openapi import Blueprint, documents_errors
from nexus.pagination import PageArgsSchema
from nexus.reports import service
from nexus.reports.schemas import ReportCreateSchema, ReportPageSchema, ReportSchema
from nexus.stores.service import get_store_for
from nexus.users.permissions import login_required

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Sales reports and your report history.")

FILE = {
    "200": {
        "description": "The report's file: CSV with a header row, or a JSON array. After the contract's columns "
        "come `buyer_email` and the shipping address (CSV: `ship_name`, `ship_line1`, `ship_line2`, `ship_city`, "
        "`ship_region`, `ship_postal_code`, `ship_country`, `ship_phone`; JSON: `shipping_address`, object or null).",
        "headers": {"Content-Disposition": {"schema": {"type": "string"}, "description": "attachment; filename=..."}},
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


@blp.route("/stores/<id:store_id>/reports")
class StoreReports(MethodView):
    @blp.doc(operationId="createSalesReport")
    @login_required()
    @blp.arguments(ReportCreateSchema())
    @blp.response(202, ReportSchema)
    @documents_errors(403, 404)
    def post(self, request, store_id):
        """Ask for a sales report of your store (a row per order paid between two dates), built by a job.

        The store's owner and admins (others 403). `date_from` and `date_to` are UTC days, both
        included, at most a year apart; `format` is `csv` (default) or `json`. Answers 202 with the
        report `pending`; a background job builds it and emails the asker when it is `ready` (poll
        `getReport`, then `downloadReport`). Each row: the order, its dates and status, item count,
        totals, refunded and net, the buyer's email and the shipping address.
        """
        store = get_store_for(get_current_user(), store_id, manage=True)
        return service.create_sales_report(get_current_user(), store, **request)


@blp.route("/reports/<id:report_id>")
class ReportById(MethodView):
    @blp.doc(operationId="getReport")
    @login_required()
    @blp.response(200, ReportSchema)
    @documents_errors(404)
    def get(self, report_id):
        """A report of yours (admins see all).

        The user who asked for it and admins; anyone else gets a 404. `status` is `pending` while
        the job builds it, then `ready` (with its `row_count`; the file is at `download_url`) or
        `failed` (with `error`).
        """
        return service.get_report_for(get_current_user(), report_id)


@blp.route("/reports/<id:report_id>/download")
class ReportDownload(MethodView):
    @blp.doc(operationId="downloadReport")
    @login_required()
    @blp.doc(responses=FILE)
    @documents_errors(404, 409)
    def get(self, report_id):
        """The report's file, streamed.

        The user who asked for it and admins (anyone else 404). A `ready` report answers its file,
        `text/csv` with a header row or a JSON array, as an attachment; before that a 409 says it is
        still being built, or why it failed.
        """
        chunks, content_type, filename = service.download(service.get_report_for(get_current_user(), report_id))
        return Response(
            chunks, content_type=content_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )


@blp.route("/profile/me/reports")
class MyReports(MethodView):
    @blp.doc(operationId="listMyReports")
    @login_required()
    @blp.arguments(PageArgsSchema(), location="query")
    @blp.response(200, ReportPageSchema)
    def get(self, args):
        """Your report history, newest first.

        Every report the signed-in user asked for, whatever its status, without the files
        themselves; keyset-paginated.
        """
        return service.history(get_current_user(), **args)
