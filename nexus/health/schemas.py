"""Wire formats of the health endpoints."""

from marshmallow import Schema, fields


class LivenessSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok"]})


class ChecksSchema(Schema):
    database = fields.String(required=True, metadata={"enum": ["ok", "error"]})


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "error"]})
    checks = fields.Nested(ChecksSchema, required=True)
    version = fields.String(required=True)
