"""outbox, pending profiles on sign-in codes, reports built by jobs

Reports are now built by a job: `pending` until then, `ready` or `failed` (with `error`) after,
at `finished_at`. The reports already kept were built on the spot, so they are ready, and
finished when they were created.

Revision ID: b759e14e3d58
Revises: a3c1e5f7b9d2
Create Date: 2026-12-01 08:37:02.526020

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b759e14e3d58'
down_revision = 'a3c1e5f7b9d2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('handed_over_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name=op.f('ck_outbox_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_id', ['status', 'id'], unique=False)

    with op.batch_alter_table('otp_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_profile', sa.JSON(), nullable=True))

    with op.batch_alter_table('user_report_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column('content',
               existing_type=sa.LargeBinary(),
               nullable=True)
        batch_op.create_check_constraint('status', "status IN ('pending', 'ready', 'failed')")
    op.execute("UPDATE user_report_history SET finished_at = created_at WHERE finished_at IS NULL")


def downgrade():
    op.execute("DELETE FROM user_report_history WHERE content IS NULL")
    with op.batch_alter_table('user_report_history', schema=None) as batch_op:
        batch_op.drop_constraint('status', type_='check')
        batch_op.alter_column('content',
               existing_type=sa.LargeBinary(),
               nullable=False)
        batch_op.drop_column('finished_at')
        batch_op.drop_column('error')

    with op.batch_alter_table('otp_codes', schema=None) as batch_op:
        batch_op.drop_column('pending_profile')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_id')

    op.drop_table('outbox')
