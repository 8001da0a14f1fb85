"""revoked_tokens rotated: a refresh token spent by a refresh, reusable within a grace window

Rows already there were revoked before the grace window existed: false, no grace.

Revision ID: efae84e51cc2
Revises: f2e6b16531d6
Create Date: 2026-12-01 09:56:46.813000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'efae84e51cc2'
down_revision = 'f2e6b16531d6'
branch_labels = None
depends_on = None


# Added (and dropped) in place, SQLite too: no batch rebuild of the table.
def upgrade():
    op.add_column(
        'revoked_tokens', sa.Column('rotated', sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade():
    op.drop_column('revoked_tokens', 'rotated')
