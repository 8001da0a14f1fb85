"""payout_accounts and transfers: sellers paid through Stripe Connect

Each store's Express connected account (its flags as Stripe last said them, and its latest
payout), and the transfer each delivered order owes its store. New tables: nothing to move.

Revision ID: 98ec2713a300
Revises: e3d77aa5f8d5
Create Date: 2026-12-01 10:58:23.970250

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '98ec2713a300'
down_revision = 'e3d77aa5f8d5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payout_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('stripe_account_id', sa.String(length=255), nullable=False),
    sa.Column('charges_enabled', sa.Boolean(), nullable=False),
    sa.Column('payouts_enabled', sa.Boolean(), nullable=False),
    sa.Column('details_submitted', sa.Boolean(), nullable=False),
    sa.Column('requirements_due', sa.JSON(), nullable=False),
    sa.Column('known_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_payout_id', sa.String(length=255), nullable=True),
    sa.Column('last_payout_status', sa.String(length=16), nullable=True),
    sa.Column('last_payout_amount', sa.BigInteger(), nullable=True),
    sa.Column('last_payout_currency', sa.String(length=3), nullable=True),
    sa.Column('last_payout_created', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_payout_arrival', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_payout_failure', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_payout_accounts_store_id_stores'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_accounts')),
    sa.UniqueConstraint('store_id', name=op.f('uq_payout_accounts_store_id')),
    sa.UniqueConstraint('stripe_account_id', name=op.f('uq_payout_accounts_stripe_account_id'))
    )
    op.create_table('transfers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('stripe_transfer_id', sa.String(length=255), nullable=True),
    sa.Column('amount_reversed', sa.BigInteger(), nullable=False),
    sa.Column('kept', sa.BigInteger(), nullable=False),
    sa.Column('fee_bps', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'paid', 'partially_reversed', 'reversed', 'canceled')", name=op.f('ck_transfers_status')),
    sa.CheckConstraint('amount >= 0 AND fee >= 0 AND kept >= 0 AND amount_reversed >= 0 AND amount_reversed <= amount', name=op.f('ck_transfers_amounts')),
    sa.CheckConstraint('fee_bps BETWEEN 0 AND 10000', name=op.f('ck_transfers_fee_bps')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_transfers_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_transfers_store_id_stores'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers')),
    sa.UniqueConstraint('order_id', name=op.f('uq_transfers_order_id')),
    sa.UniqueConstraint('stripe_transfer_id', name=op.f('uq_transfers_stripe_transfer_id'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index('ix_transfers_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_transfers_store_id_id', ['store_id', 'id'], unique=False)
        batch_op.create_index('ix_transfers_store_id_status_id', ['store_id', 'status', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_transfers_store_id_status_id')
        batch_op.drop_index('ix_transfers_store_id_id')
        batch_op.drop_index('ix_transfers_status_id')

    op.drop_table('transfers')
    op.drop_table('payout_accounts')
