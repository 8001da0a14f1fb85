"""`/api/v1/stores` and `/api/v1/products`: open stores, list products, browse the catalog."""

from flask import current_app
from flask.views import MethodView
from flask_jwt_extended import get_current_user

from nexus.extensions import limiter
from nexus.openapi import Blueprint, documents_errors
from nexus.stores import service
from nexus.stores.schemas import (
    CatalogArgsSchema,
    ProductCreateSchema,
    ProductPageSchema,
    ProductSchema,
    ProductUpdateSchema,
    StoreCreateSchema,
    StoreListArgsSchema,
    StorePageSchema,
    StoreProductsArgsSchema,
    StoreSchema,
    StoreUpdateSchema,
)
from nexus.users.permissions import login_optional, login_required
from nexus.web import cacheable

stores = Blueprint("stores", __name__, url_prefix="/api/v1/stores", description="Stores and their products.")
products = Blueprint("products", __name__, url_prefix="/api/v1/products", description="The product catalog.")

# The lists anyone may read without signing in (the catalog, stores, a store's products) share
# one generous budget per client IP: they are what a scraper or a flood of searches would hit.
catalog_limit = limiter.shared_limit(lambda: current_app.config["CATALOG_RATE_LIMIT_PER_IP"], scope="catalog-ip")


@stores.route("")
class Stores(MethodView):
    @stores.doc(operationId="listStores")
    @cacheable
    @stores.arguments(StoreListArgsSchema(), location="query")
    @stores.response(200, StorePageSchema)
    @documents_errors(429)
    @catalog_limit
    def get(self, args):
        """Active stores, newest first.

        Anyone, no token. Stores on sale (active, with an active owner), keyset-paginated; `q`
        finds stores whose name holds every word of it, `slug` the one store with that slug (an
        empty page if none is on sale). 429 (with `Retry-After`) past the catalog's per-IP budget.
        """
        return service.list_stores(**args)

    @stores.doc(operationId="createStore")
    @login_required(verified=True)
    @stores.arguments(StoreCreateSchema())
    @stores.response(201, StoreSchema)
    def post(self, fields):
        """Open a store; you own it.

        Users with a verified email address (others 403). The slug is derived from the name, in
        ASCII whatever its script, and made unique; `currency` (default `aed`) must be one Stripe
        can charge, else 422. Answers the new store, active.
        """
        return service.create_store(get_current_user(), **fields)


@stores.route("/<id:store_id>")
class StoreById(MethodView):
    @stores.doc(operationId="getStore")
    @cacheable
    @login_optional()
    @stores.response(200, StoreSchema)
    @documents_errors(404)
    def get(self, store_id):
        """A store (an inactive one only for its owner and admins).

        Anyone; a token is optional. A store that is closed, or whose owner is deactivated, is a
        404 for everyone but its owner and admins.
        """
        return service.get_store_for(get_current_user(), store_id)

    @stores.doc(operationId="updateStore")
    @login_required()
    @stores.arguments(StoreUpdateSchema(), required=False)
    @stores.response(200, StoreSchema)
    @documents_errors(403, 404)
    def patch(self, changes, store_id):
        """Rename, describe, open or close your store.

        The store's owner or an admin: `name`, `description`, `is_active` (false closes it: off the
        catalog, its products not orderable). Anyone else gets 403, or 404 if they may not see the
        store; any other field is a 422. An admin's change is recorded in the audit log.
        """
        store = service.get_store_for(get_current_user(), store_id, manage=True)
        return service.update_store(get_current_user(), store, changes)


@stores.route("/<id:store_id>/products")
class StoreProducts(MethodView):
    @stores.doc(operationId="listStoreProducts")
    @cacheable
    @login_optional()
    @stores.arguments(StoreProductsArgsSchema(), location="query")
    @stores.response(200, ProductPageSchema)
    @documents_errors(403, 404, 429)
    @catalog_limit
    def get(self, args, store_id):
        """A store's active products (all of them for its owner and admins, with include_inactive).

        Anyone; a token is optional. The catalog's filters and sorts (`q`, `min_price`, `max_price`,
        `in_stock`, `sort`), keyset-paginated. `include_inactive=true` adds products taken off sale,
        for the store's owner and admins only (others 403). 404 for a store the caller may not see;
        429 past the catalog's per-IP budget.
        """
        return service.list_store_products(get_current_user(), store_id, **args)

    @stores.doc(operationId="createProduct")
    @login_required()
    @stores.arguments(ProductCreateSchema())
    @stores.response(201, ProductSchema)
    @documents_errors(403, 404, 409)
    def post(self, fields, store_id):
        """List a product in your store.

        The store's owner or an admin (others 403). The product takes the store's currency; its
        `price` (over 0) must be payable in it (a multiple of 10 in three-decimal currencies such as
        `kwd`), else 422. A `sku` the store already uses is a 409.
        """
        store = service.get_store_for(get_current_user(), store_id, manage=True)
        return service.create_product(get_current_user(), store, **fields)


@products.route("")
class Catalog(MethodView):
    @products.doc(operationId="listProducts")
    @cacheable
    @products.arguments(CatalogArgsSchema(), location="query")
    @products.response(200, ProductPageSchema)
    @documents_errors(429)
    @catalog_limit
    def get(self, args):
        """The catalog: active products of active stores, filtered and sorted.

        Anyone, no token. `q` finds products holding every word of it (at most five) in their name
        or description; `store_id`, `min_price`, `max_price` (inclusive) and `in_stock=true`
        (`available > 0`) filter; `sort` is `newest` (the default), `price_asc` or `price_desc`,
        keyset-paginated in each. An unknown parameter or a malformed cursor is a 422; 429 past the
        catalog's per-IP budget.
        """
        return service.list_catalog(**args)


@products.route("/<id:product_id>")
class ProductById(MethodView):
    @products.doc(operationId="getProduct")
    @cacheable
    @login_optional()
    @products.response(200, ProductSchema)
    @documents_errors(404)
    def get(self, product_id):
        """A product (an inactive one only for its store's owner and admins).

        Anyone; a token is optional. With its `stock`, `reserved` (held by unpaid and unshipped
        orders) and `available`. A product off sale, or of a closed store, is a 404 for everyone
        but the store's owner and admins.
        """
        return service.get_product_for(get_current_user(), product_id)

    @products.doc(operationId="updateProduct")
    @login_required()
    @products.arguments(ProductUpdateSchema(), required=False)
    @products.response(200, ProductSchema)
    @documents_errors(403, 404, 409)
    def patch(self, changes, product_id):
        """Change a product of your store.

        The store's owner or an admin (others 403). `stock` is the units counted on the shelf: below
        what orders hold (`reserved`) it is a 409 saying how many; a `sku` the store already uses is
        a 409 too. Orders placed before keep the name and price they were placed at.
        """
        product = service.get_product_for(get_current_user(), product_id, manage=True)
        return service.update_product(get_current_user(), product, changes)

    @products.doc(operationId="deleteProduct")
    @login_required()
    @products.response(204)
    @documents_errors(403, 404)
    def delete(self, product_id):
        """Take a product off sale (orders keep their snapshot).

        The store's owner or an admin (others 403). 204; the product is deactivated, not erased: it
        leaves the catalog and cannot be ordered, orders keep their lines, and a PATCH with
        `is_active: true` puts it back on sale.
        """
        user = get_current_user()
        service.deactivate_product(user, service.get_product_for(user, product_id, manage=True))
