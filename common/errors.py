"""Domain errors: what a service refuses to do, in the platform's own terms.

Services raise these and know nothing of HTTP; each edge decides how a kind is answered: the API maps it to a
status in `common.problems` (Invalid 400, NotAllowed 403, NotFound 404, Conflict 409), the admin shows the
detail as a message. `code` is stable (clients branch on it); `field` names the input at fault, if one is;
`extra` carries facts the answer shows (e.g. which items are short).
"""


class DomainError(Exception):
    default_code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None, **extra):
        super().__init__(detail)
        self.detail, self.code, self.field, self.extra = detail, code or self.default_code, field, extra

    def __str__(self) -> str:
        return self.detail


class Invalid(DomainError):
    """The request itself breaks a rule (an inactive store, a weak password)."""


class NotAllowed(DomainError):
    """This caller may not do this."""

    default_code = "permission_denied"


class NotFound(DomainError):
    """No such thing, or not the caller's: the two answer alike, so existence is never revealed."""

    default_code = "not_found"


class Conflict(DomainError):
    """The state of things refuses it now (out of stock, an order already picked up)."""

    default_code = "conflict"
