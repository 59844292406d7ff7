from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from common.fields import JSONNumberField
from common.ids import bigint_id
from common.pagination import CursorPage
from inventory import selectors, services
from inventory.models import Product, Store


class StoreOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    address = serializers.CharField()
    lat = serializers.FloatField()
    lng = serializers.FloatField()
    is_active = serializers.BooleanField()


class ProductOutput(serializers.Serializer):
    id = serializers.CharField()
    store_id = serializers.UUIDField()
    sku = serializers.CharField()
    name = serializers.CharField()
    price = serializers.IntegerField()
    currency = serializers.CharField()
    available = serializers.IntegerField()
    is_active = serializers.BooleanField()


class StaffWritesMixin:
    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAdminUser()]
        return super().get_permissions()


class StoreListApi(StaffWritesMixin, APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        address = serializers.CharField(max_length=500)
        lat = JSONNumberField(min_value=-90, max_value=90)
        lng = JSONNumberField(min_value=-180, max_value=180)
        is_active = serializers.BooleanField(default=True)

    @extend_schema(responses=StoreOutput(many=True))
    def get(self, request):
        paginator = CursorPage()
        page = paginator.paginate_queryset(Store.objects.all(), request, view=self)
        return paginator.get_paginated_response(StoreOutput(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: StoreOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        store = services.store_create(**data.validated_data)
        return Response(StoreOutput(store).data, status=status.HTTP_201_CREATED)


class StoreDetailApi(APIView):
    @extend_schema(responses=StoreOutput)
    def get(self, request, store_id):
        return Response(StoreOutput(get_object_or_404(Store, pk=store_id)).data)


class ProductListApi(StaffWritesMixin, APIView):
    class InputSerializer(serializers.Serializer):
        store_id = serializers.PrimaryKeyRelatedField(queryset=Store.objects.all(), source="store")
        sku = serializers.CharField(max_length=64)
        name = serializers.CharField(max_length=200)
        price = serializers.IntegerField(min_value=0, max_value=100_000_000)
        currency = serializers.RegexField(r"^[A-Z]{3}$", max_length=3)
        stock = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)

    class FilterSerializer(serializers.Serializer):
        store = serializers.UUIDField(required=False)
        search = serializers.CharField(required=False, max_length=100)

    @extend_schema(
        parameters=[OpenApiParameter("store", str), OpenApiParameter("search", str)],
        responses=ProductOutput(many=True),
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        products = selectors.products_matching(
            store_id=filters.validated_data.get("store"), search=filters.validated_data.get("search")
        )
        paginator = CursorPage()
        page = paginator.paginate_queryset(products, request, view=self)
        return paginator.get_paginated_response(ProductOutput(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ProductOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        product = services.product_create(**data.validated_data)
        return Response(ProductOutput(product).data, status=status.HTTP_201_CREATED)


def _product_or_404(product_id) -> Product:
    product = selectors.product_get(product_id=bigint_id(product_id))
    if product is None:
        raise Http404
    return product


class ProductDetailApi(APIView):
    @extend_schema(responses=ProductOutput)
    def get(self, request, product_id):
        return Response(ProductOutput(_product_or_404(product_id)).data)


class ProductRestockApi(APIView):
    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        quantity = serializers.IntegerField(min_value=1, max_value=10_000_000)

    @extend_schema(
        request=InputSerializer,
        responses={200: ProductOutput, 409: OpenApiResponse(description="`stock_limit_exceeded`")},
    )
    def post(self, request, product_id):
        product = _product_or_404(product_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        product = services.product_restock(product_id=product.pk, quantity=data.validated_data["quantity"])
        return Response(ProductOutput(product).data)
