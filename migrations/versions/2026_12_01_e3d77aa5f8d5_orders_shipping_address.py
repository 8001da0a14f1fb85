"""orders shipping_address: where the goods go, snapshotted when the order is placed

Orders placed before addresses were asked for keep null.

Revision ID: e3d77aa5f8d5
Revises: efae84e51cc2
Create Date: 2026-12-01 10:52:42.845066

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e3d77aa5f8d5'
down_revision = 'efae84e51cc2'
branch_labels = None
depends_on = None


# A nullable column is added (and dropped) in place, SQLite too: no batch rebuild of the table.
def upgrade():
    op.add_column('orders', sa.Column('shipping_address', sa.JSON(), nullable=True))


def downgrade():
    op.drop_column('orders', 'shipping_address')
