"""products search words: an index of the words of a product's name and description

`q` words of one or two letters (`tv`, `a`) yield no trigram, so ix_products_search_trgm cannot
look them up and Postgres read every product to answer them. This GIN index of the text's words
('simple' configuration: lower-cased, not stemmed) finds the words starting with them.

Built CONCURRENTLY, outside the migration's transaction: products stay writable (orders reserve
stock) while it builds, about half a minute at a million products. A build that fails leaves
an invalid index behind; running the upgrade again replaces it.

Revision ID: c4d8e2f6a1b3
Revises: a3c1e5f7b9d2
Create Date: 2026-12-01 08:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4d8e2f6a1b3'
down_revision = 'a3c1e5f7b9d2'
branch_labels = None
depends_on = None

SEARCH_WORDS = "to_tsvector('simple'::regconfig, (name::text || ' '::text) || description)"


def on_postgres():
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    if not on_postgres():
        return  # SQLite searches with LIKE, without an index
    with op.get_context().autocommit_block():
        op.drop_index('ix_products_search_words', table_name='products', postgresql_concurrently=True, if_exists=True)
        op.create_index('ix_products_search_words', 'products', [sa.literal_column(SEARCH_WORDS)], unique=False, postgresql_using='gin', postgresql_concurrently=True)


def downgrade():
    if not on_postgres():
        return
    with op.get_context().autocommit_block():
        op.drop_index('ix_products_search_words', table_name='products', postgresql_concurrently=True, if_exists=True)
