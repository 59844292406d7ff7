import re

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from common.problems import Problem


class CursorPage(CursorPagination):
    """`{"results": [...], "next": url|null}`: stable under concurrent inserts, cheap at any depth."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = "-created_at"

    def decode_cursor(self, request):
        # DRF answers a cursor it cannot read with 404, as if the list were gone; it is bad input (400).
        try:
            cursor = super().decode_cursor(request)
            # The position is compared with `created_at`: one that is no time would reach the database.
            if cursor is not None and cursor.position is not None and parse_datetime(cursor.position) is None:
                raise ValueError(cursor.position)
        except (NotFound, ValueError):
            raise Problem("The cursor is not one this API gave out; start again without it.", code="invalid_cursor")
        return cursor

    def get_page_size(self, request):
        # DRF quietly ignores a `limit` it cannot read; an invalid one is bad input like any other. Larger than
        # max_page_size is not an error: the page is simply that long at most.
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,9}", raw) or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: ["A whole number of at least 1 is required."]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        # An empty `cursor=` or `limit=` means "none given", as for every optional query parameter.
        return [
            {"name": self.cursor_query_param, "required": False, "in": "query", "allowEmptyValue": True,
             "description": "The `next` link's cursor; only values the API gave out.", "schema": {"type": "string"}},
            {"name": self.page_size_query_param, "required": False, "in": "query", "allowEmptyValue": True,
             "description": f"Page size (default {self.page_size}; larger values give at most {self.max_page_size}).",
             "schema": {"type": "integer", "minimum": 1}},
        ]  # fmt: skip

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "format": "uri", "nullable": True}},
        }
