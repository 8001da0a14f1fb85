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
    @cacheable
    @stores.arguments(StoreListArgsSchema(), location="query")
    @stores.response(200, StorePageSchema)
    @documents_errors(429)
    @catalog_limit
    def get(self, args):
        """Active stores, newest first."""
        return service.list_stores(**args)

    @login_required(verified=True)
    @stores.arguments(StoreCreateSchema())
    @stores.response(201, StoreSchema)
    def post(self, fields):
        """Open a store; you own it."""
        return service.create_store(get_current_user(), **fields)


@stores.route("/<id:store_id>")
class StoreById(MethodView):
    @cacheable
    @login_optional()
    @stores.response(200, StoreSchema)
    @documents_errors(404)
    def get(self, store_id):
        """A store (an inactive one only for its owner and admins)."""
        return service.get_store_for(get_current_user(), store_id)

    @login_required()
    @stores.arguments(StoreUpdateSchema(), required=False)
    @stores.response(200, StoreSchema)
    @documents_errors(403, 404)
    def patch(self, changes, store_id):
        """Rename, describe, open or close your store."""
        store = service.get_store_for(get_current_user(), store_id, manage=True)
        return service.update_store(get_current_user(), store, changes)


@stores.route("/<id:store_id>/products")
class StoreProducts(MethodView):
    @cacheable
    @login_optional()
    @stores.arguments(StoreProductsArgsSchema(), location="query")
    @stores.response(200, ProductPageSchema)
    @documents_errors(403, 404, 429)
    @catalog_limit
    def get(self, args, store_id):
        """A store's active products (all of them for its owner and admins, with include_inactive)."""
        return service.list_store_products(get_current_user(), store_id, **args)

    @login_required()
    @stores.arguments(ProductCreateSchema())
    @stores.response(201, ProductSchema)
    @documents_errors(403, 404, 409)
    def post(self, fields, store_id):
        """List a product in your store."""
        store = service.get_store_for(get_current_user(), store_id, manage=True)
        return service.create_product(get_current_user(), store, **fields)


@products.route("")
class Catalog(MethodView):
    @cacheable
    @products.arguments(CatalogArgsSchema(), location="query")
    @products.response(200, ProductPageSchema)
    @documents_errors(429)
    @catalog_limit
    def get(self, args):
        """The catalog: active products of active stores, filtered and sorted."""
        return service.list_catalog(**args)


@products.route("/<id:product_id>")
class ProductById(MethodView):
    @cacheable
    @login_optional()
    @products.response(200, ProductSchema)
    @documents_errors(404)
    def get(self, product_id):
        """A product (an inactive one only for its store's owner and admins)."""
        return service.get_product_for(get_current_user(), product_id)

    @login_required()
    @products.arguments(ProductUpdateSchema(), required=False)
    @products.response(200, ProductSchema)
    @documents_errors(403, 404, 409)
    def patch(self, changes, product_id):
        """Change a product of your store."""
        product = service.get_product_for(get_current_user(), product_id, manage=True)
        return service.update_product(get_current_user(), product, changes)

    @login_required()
    @products.response(204)
    @documents_errors(403, 404)
    def delete(self, product_id):
        """Take a product off sale (orders keep their snapshot)."""
        user = get_current_user()
        service.deactivate_product(user, service.get_product_for(user, product_id, manage=True))
