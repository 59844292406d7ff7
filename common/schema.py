"""The OpenAPI document, made to tell what clients actually get.

Views declare their success answer (and their own domain errors, with a description); everything every
operation shares is added here, once: the paginated shape of lists, and the RFC 9457 problem answers
(`application/problem+json`) of the failures any operation of that kind can meet.
"""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.serializers import ListSerializer
from rest_framework_simplejwt.views import TokenViewBase

from common.pagination import CursorPage
from common.problems import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details. `code` is stable and machine-readable; some problems carry more "
    "members (`errors` for validation, `items` for out_of_stock, ...).",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "code": {"type": "string"}},
                "required": ["field", "message", "code"],
            },
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
    "additionalProperties": True,
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before trying again."}}

# What each shared failure means; an operation's own description of the same status wins.
GENERIC_PROBLEMS = {
    "400": "Malformed or invalid input (`validation_error` with `errors`, `malformed_request`, `invalid_cursor`, ...); "
    "nothing written.",
    "401": "No credentials or invalid ones (`not_authenticated`, `invalid_token`, `authentication_failed`).",
    "403": "Not allowed (`permission_denied`, `not_a_driver`, `csrf_failed` for a session-authenticated write "
    "without its CSRF token).",
    "404": "Not found, or not yours: someone else's resource answers exactly like a missing one.",
    "413": "The request body is larger than the limit (`body_too_large`).",
    "415": "The body is not `application/json` (`unsupported_media_type`).",
    "429": "Throttled (`throttled`); see `Retry-After`.",
    "503": "A dependency (database, Redis, broker) is down; see `Retry-After`.",
}


class AutoSchema(BaseAutoSchema):
    """Name components after their full nesting (`MeApi.OutputSerializer` → `MeApiOutput`), so the
    house style of nested InputSerializer/OutputSerializer classes never collides in the schema."""

    def get_serializer_name(self, serializer, direction):
        name = super().get_serializer_name(serializer, direction)
        cls = type(serializer.child if isinstance(serializer, ListSerializer) else serializer)
        if "." in cls.__qualname__ and not getattr(getattr(cls, "Meta", None), "ref_name", None):
            return cls.__qualname__.replace("Serializer", "").replace(".", "")
        return name

    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            if parameter.get("in") == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True  # DRF reads `?status=` as no filter at all
        return parameters

    def _get_paginator(self):
        # Views page lists by hand with CursorPage (the contract: every list is `{results, next}`), so the
        # paginated shape and its `cursor`/`limit` parameters come from here rather than `pagination_class`.
        return super()._get_paginator() or CursorPage()

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        problem = self._problem_component()
        for status in self._problem_statuses(responses):
            declared = responses.get(status, {})
            responses[status] = {
                "description": declared.get("description") or GENERIC_PROBLEMS.get(status, "A problem."),
                "content": {PROBLEM_CONTENT_TYPE: {"schema": problem.ref}},
                **({"headers": RETRY_AFTER} if status in ("429", "503") else {}),
            }
        return dict(sorted(responses.items()))

    def _problem_statuses(self, declared) -> list[str]:
        statuses = {status for status in declared if status >= "400"}
        statuses |= {"429", "503"}
        if self._has_body() or self._get_pagination_parameters() or self._query_parameters():
            statuses.add("400")
        if self._has_body():
            statuses |= {"413", "415"}
        if self._may_need_credentials():
            statuses.add("401")
        if self._may_forbid():
            statuses.add("403")
        if "{" in self.path:
            statuses.add("404")
        return sorted(statuses)

    def _has_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None

    def _query_parameters(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters())

    def _may_need_credentials(self) -> bool:
        # simplejwt's token views have no authenticators but answer wrong credentials with 401.
        return bool(self.view.get_authenticators()) or isinstance(self.view, TokenViewBase)

    def _may_forbid(self) -> bool:
        permissions = {type(p) for p in self.view.get_permissions()}
        stricter = bool(permissions - {AllowAny, IsAuthenticated})
        csrf = self.method not in ("GET", "HEAD", "OPTIONS") and any(
            isinstance(a, SessionAuthentication) for a in self.view.get_authenticators()
        )
        return stricter or csrf

    def _problem_component(self) -> ResolvedComponent:
        component = ResolvedComponent(
            name="Problem", type=ResolvedComponent.SCHEMA, schema=PROBLEM_SCHEMA, object="Problem"
        )
        self.registry.register_on_missing(component)
        return component
