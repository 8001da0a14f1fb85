"""payments charge_id: the charge that paid a payment, the source of its sellers' transfers

Payments settled before keep null (only Stripe knows their charges): a transfer for one reads
its charge from Stripe when it is made.

Revision ID: 81faf2d4d102
Revises: 98ec2713a300
Create Date: 2026-12-01 19:39:45.537722

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '81faf2d4d102'
down_revision = '98ec2713a300'
branch_labels = None
depends_on = None


# A nullable column is added (and dropped) in place, SQLite too: no batch rebuild of the table.
def upgrade():
    op.add_column('payments', sa.Column('charge_id', sa.String(length=255), nullable=True))


def downgrade():
    op.drop_column('payments', 'charge_id')
