from django.conf import settings

from common.problems import dependency_down, outage_response, problem_response


class BodySizeLimitMiddleware:
    """Answer 413 from the declared length, before a byte of an oversized body is read.

    Bodies without a declared length are caught by Django's own DATA_UPLOAD_MAX_MEMORY_SIZE check,
    which the problem handler also maps to 413.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(400, "bad_request", "Content-Length is not a number.")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit and not request.path.startswith("/admin/"):
            return problem_response(413, "body_too_large", f"The request body is larger than {limit} bytes.")
        return self.get_response(request)


class DependencyOutageMiddleware:
    """A view that fails because a dependency is down answers 503 with Retry-After (see
    `common.problems.dependency_down`), with DEBUG on too; `handler500` does the same for errors
    raised outside views."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if dependency := dependency_down(exception):
            return outage_response(request, dependency)
        return None
