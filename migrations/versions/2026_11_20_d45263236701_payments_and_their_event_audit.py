"""payments and their event audit

Revision ID: d45263236701
Revises: 7199df450d4d
Create Date: 2026-11-20 23:34:48.445407

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd45263236701'
down_revision = '7199df450d4d'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('provider_payment_id', sa.String(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('amount_refunded', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'processing', 'succeeded', 'failed', 'canceled', 'refunded', 'partially_refunded')", name=op.f('ck_payments_status')),
    sa.CheckConstraint('amount > 0 AND amount_refunded >= 0 AND amount_refunded <= amount', name=op.f('ck_payments_amounts')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_payments_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('provider_payment_id', name=op.f('uq_payments_provider_payment_id'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_payments_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_payments_user_id_id', ['user_id', 'id'], unique=False)
        batch_op.create_index('uq_payments_order_id_open', ['order_id'], unique=True, postgresql_where=sa.text("status IN ('pending', 'processing')"), sqlite_where=sa.text("status IN ('pending', 'processing')"))

    op.create_table('payment_event_audits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stripe_event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.Column('replays', sa.Integer(), nullable=False),
    sa.Column('processing_ms', sa.Float(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("outcome IN ('applied', 'duplicate', 'ignored', 'anomaly', 'error')", name=op.f('ck_payment_event_audits_outcome')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_event_audits_payment_id_payments'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_event_audits')),
    sa.UniqueConstraint('stripe_event_id', name=op.f('uq_payment_event_audits_stripe_event_id'))
    )
    with op.batch_alter_table('payment_event_audits', schema=None) as batch_op:
        batch_op.create_index('ix_payment_event_audits_outcome_id', ['outcome', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_event_audits_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index('ix_payment_event_audits_type_id', ['type', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('payment_event_audits', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_event_audits_type_id')
        batch_op.drop_index(batch_op.f('ix_payment_event_audits_payment_id'))
        batch_op.drop_index('ix_payment_event_audits_outcome_id')

    op.drop_table('payment_event_audits')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('uq_payments_order_id_open', postgresql_where=sa.text("status IN ('pending', 'processing')"), sqlite_where=sa.text("status IN ('pending', 'processing')"))
        batch_op.drop_index('ix_payments_user_id_id')
        batch_op.drop_index('ix_payments_status_id')
        batch_op.drop_index(batch_op.f('ix_payments_order_id'))

    op.drop_table('payments')
