from django.urls import path

from inventory import api

urlpatterns = [
    path("stores", api.StoreListApi.as_view(), name="stores"),
    path("stores/<uuid:store_id>", api.StoreDetailApi.as_view(), name="store"),
    path("products", api.ProductListApi.as_view(), name="products"),
    path("products/<str:product_id>", api.ProductDetailApi.as_view(), name="product"),
    path("products/<str:product_id>/restock", api.ProductRestockApi.as_view(), name="product-restock"),
]
