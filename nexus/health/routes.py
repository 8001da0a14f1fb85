"""`/health` (liveness, no database) and `/api/v1/health` (readiness, checks the database)."""

from flask.views import MethodView

from nexus.health import service
from nexus.health.schemas import LivenessSchema, ReadinessSchema
from nexus.openapi import Blueprint

blp = Blueprint("health", __name__, description="Liveness and readiness.")


@blp.route("/health")
class Liveness(MethodView):
    @blp.response(200, LivenessSchema)
    def get(self):
        """The process is up (touches no database)."""
        return {"status": "ok"}


@blp.route("/api/v1/health")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="The database did not answer within 3 s.")
    def get(self):
        """The service can serve requests: the database answers."""
        up = service.database_is_up()
        body = {
            "status": "ok" if up else "error",
            "checks": {"database": "ok" if up else "error"},
            "version": service.version(),
        }
        return body, 200 if up else 503
