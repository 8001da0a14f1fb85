"""users tokens_valid_after: tokens issued before a deactivation stay dead after a reactivation

Revision ID: f2e6b16531d6
Revises: b759e14e3d58
Create Date: 2026-12-01 09:54:58.520504

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "f2e6b16531d6"
down_revision = "b759e14e3d58"
branch_labels = None
depends_on = None


# A nullable column is added (and dropped) in place, SQLite too: no batch rebuild of `users`,
# which other tables refer to.
def upgrade():
    op.add_column("users", sa.Column("tokens_valid_after", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("users", "tokens_valid_after")
