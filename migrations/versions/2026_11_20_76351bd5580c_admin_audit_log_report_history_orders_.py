"""admin audit log, report history, orders by store and payment time

Revision ID: 76351bd5580c
Revises: d45263236701
Create Date: 2026-11-20 23:44:37.470479

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '76351bd5580c'
down_revision = 'd45263236701'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('admin_audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=32), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_admin_audit_log_actor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_audit_log'))
    )
    with op.batch_alter_table('admin_audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_audit_log_actor_id'), ['actor_id'], unique=False)

    op.create_table('user_report_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("format IN ('csv', 'json')", name=op.f('ck_user_report_history_format')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_user_report_history_store_id_stores'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_report_history_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_report_history'))
    )
    with op.batch_alter_table('user_report_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_report_history_store_id'), ['store_id'], unique=False)
        batch_op.create_index('ix_user_report_history_user_id_id', ['user_id', 'id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_store_id_paid_at', ['store_id', 'paid_at'], unique=False)



def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_store_id_paid_at')

    with op.batch_alter_table('user_report_history', schema=None) as batch_op:
        batch_op.drop_index('ix_user_report_history_user_id_id')
        batch_op.drop_index(batch_op.f('ix_user_report_history_store_id'))

    op.drop_table('user_report_history')
    with op.batch_alter_table('admin_audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_audit_log_actor_id'))

    op.drop_table('admin_audit_log')
