"""scrub client secrets from stored payment events

Stripe's payment_intent events and the intents reconciliation read carry the intent's
`client_secret`, a capability to pay it; the event audit kept them whole. The app now scrubs
them before storing; this removes them from the rows stored before.

Revision ID: a3c1e5f7b9d2
Revises: 749fa1e5dd0d
Create Date: 2026-12-01 08:20:00

"""
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3c1e5f7b9d2'
down_revision = '749fa1e5dd0d'
branch_labels = None
depends_on = None

BATCH = 1000
audits = sa.table(
    'payment_event_audits', sa.column('id', sa.Integer), sa.column('payload', sa.JSON)
)


def scrubbed(value):
    """The value without any `client_secret`, at any depth (as nexus.payments.gateway.scrubbed)."""
    if isinstance(value, dict):
        return {key: scrubbed(item) for key, item in value.items() if key != 'client_secret'}
    if isinstance(value, list):
        return [scrubbed(item) for item in value]
    return value


def upgrade():
    connection = op.get_bind()
    holding = sa.cast(audits.c.payload, sa.Text).like('%client_secret%')
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(audits.c.id, audits.c.payload)
            .where(audits.c.id > last_id, holding)
            .order_by(audits.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
            connection.execute(audits.update().where(audits.c.id == row.id).values(payload=scrubbed(payload)))
        last_id = rows[-1].id


def downgrade():
    pass  # a secret removed is not put back
