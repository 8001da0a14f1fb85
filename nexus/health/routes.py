"""`/health` (liveness, no database) and `/api/v1/health` (readiness, checks the database)."""

from flask.views import MethodView

from nexus.health import service
from nexus.health.schemas import LivenessSchema, ReadinessSchema
from nexus.openapi import Blueprint

blp = Blueprint("health", __name__, description="Liveness and readiness.")


@blp.route("/health")
class Liveness(MethodView):
    @blp.doc(operationId="getLiveness")
    @blp.response(200, LivenessSchema)
    def get(self):
        """The process is up (touches no database).

        For load balancers and process supervisors: answers 200 `{"status": "ok"}` as long as the
        process serves requests, whatever the state of the database, so a database outage never
        gets healthy web processes restarted. No token.
        """
        return {"status": "ok"}


@blp.route("/api/v1/health")
class Readiness(MethodView):
    @blp.doc(operationId="getReadiness")
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="The database did not answer within 3 s.")
    def get(self):
        """The service can serve requests: the database answers.

        Runs `SELECT 1` against the database: 200 with `checks.database: "ok"` and the running
        `version` (the release, plus the deployed commit on Render), or, when the database fails or
        has not answered within 2.5 s, 503 with `status` and `checks.database` `"error"`. No token.
        """
        up = service.database_is_up()
        body = {
            "status": "ok" if up else "error",
            "checks": {"database": "ok" if up else "error"},
            "version": service.version(),
        }
        return body, 200 if up else 503
