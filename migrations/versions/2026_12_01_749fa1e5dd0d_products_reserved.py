"""products reserved: stock is what the store holds, reserved what orders hold of it

Until now `stock` had the units of waiting orders taken off it. From here on `stock` is the
units the store holds and has not shipped and `reserved` the units held by orders that are
pending_payment or paid, so existing rows get those units back on `stock` and into `reserved`.

Revision ID: 749fa1e5dd0d
Revises: 76351bd5580c
Create Date: 2026-12-01 08:05:01.894916

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '749fa1e5dd0d'
down_revision = '76351bd5580c'
branch_labels = None
depends_on = None

# What the orders waiting for payment or paid (not yet fulfilled) hold, per product.
HELD = """
    SELECT order_items.product_id, SUM(order_items.quantity) AS quantity
    FROM order_items JOIN orders ON orders.id = order_items.order_id
    WHERE orders.status IN ('pending_payment', 'paid')
    GROUP BY order_items.product_id
"""


# SQLite adds (and drops) the column in place, constraints with it: rebuilding `products` the
# batch way would drop a table that order_items still refer to, which foreign keys refuse.
SQLITE_ADD = (
    "ALTER TABLE products ADD COLUMN reserved INTEGER DEFAULT '0' NOT NULL"
    " CONSTRAINT ck_products_reserved_not_negative CHECK (reserved >= 0)"
    " CONSTRAINT ck_products_reserved_within_stock CHECK (reserved <= stock)"
)


def on_sqlite():
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    if on_sqlite():
        op.execute(SQLITE_ADD)
    else:
        op.add_column('products', sa.Column('reserved', sa.Integer(), server_default='0', nullable=False))
        op.create_check_constraint(op.f('ck_products_reserved_not_negative'), 'products', 'reserved >= 0')
        op.create_check_constraint(op.f('ck_products_reserved_within_stock'), 'products', 'reserved <= stock')

    op.execute(
        f"UPDATE products SET reserved = held.quantity, stock = products.stock + held.quantity"
        f" FROM ({HELD}) AS held WHERE products.id = held.product_id"
    )


def downgrade():
    op.execute("UPDATE products SET stock = stock - reserved")
    if on_sqlite():
        op.execute("ALTER TABLE products DROP COLUMN reserved")
        return
    op.drop_constraint(op.f('ck_products_reserved_within_stock'), 'products', type_='check')
    op.drop_constraint(op.f('ck_products_reserved_not_negative'), 'products', type_='check')
    op.drop_column('products', 'reserved')
