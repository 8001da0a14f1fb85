"""refunds noted before they are sent; transfers' attempts noted; demo payments and transfers marked

Revision ID: 1fc3b150171c
Revises: 81faf2d4d102
Create Date: 2026-12-07 17:52:16.708198

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "1fc3b150171c"
down_revision = "81faf2d4d102"
branch_labels = None
depends_on = None

# `demo seed` made up these ids: their payments and transfers were never at Stripe.
DEMO_PAYMENTS = "UPDATE payments SET demo = :yes WHERE provider_payment_id LIKE 'pi!_demo!_%' ESCAPE '!'"
DEMO_TRANSFERS = "UPDATE transfers SET demo = :yes WHERE stripe_transfer_id LIKE 'tr!_demo!_%' ESCAPE '!'"


def upgrade():
    op.create_table(
        "refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('sending', 'made', 'not_made', 'in_doubt')", name=op.f("ck_refunds_status")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("stripe_refund_id", name=op.f("uq_refunds_stripe_refund_id")),
    )
    op.create_index(op.f("ix_refunds_payment_id"), "refunds", ["payment_id"], unique=False)
    # Columns added in place, SQLite too (a NOT NULL one with its default): no batch rebuild of
    # `payments` or `transfers`, which other tables refer to.
    op.add_column("payments", sa.Column("demo", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("transfers", sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("transfers", sa.Column("reversal_attempted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("transfers", sa.Column("demo", sa.Boolean(), server_default=sa.false(), nullable=False))
    yes = {"yes": True}
    op.execute(sa.text(DEMO_PAYMENTS).bindparams(**yes))
    op.execute(sa.text(DEMO_TRANSFERS).bindparams(**yes))


def downgrade():
    op.drop_column("transfers", "demo")
    op.drop_column("transfers", "reversal_attempted_at")
    op.drop_column("transfers", "attempted_at")
    op.drop_column("payments", "demo")
    op.drop_index(op.f("ix_refunds_payment_id"), table_name="refunds")
    op.drop_table("refunds")
