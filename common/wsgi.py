"""WSGI plumbing shared by config.wsgi and the WSGI half of config.asgi."""

import io
import json

from django.conf import settings

from common.problems import PROBLEM_CONTENT_TYPE, problem_body


class ChunkedBodyMiddleware:
    """Give a chunked request body (no Content-Length) to Django.

    Django reads exactly CONTENT_LENGTH bytes of a request, so without the header it reads none: a valid order
    sent chunked was answered "400 missing fields". Here the body is read up to the size limit into memory and
    handed on with its length; a larger one is refused with 413 without reading further.
    """

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            body = environ["wsgi.input"].read() if limit is None else environ["wsgi.input"].read(limit + 1)
            if limit is not None and len(body) > limit:
                return _too_large(limit, start_response)
            environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        return self.application(environ, start_response)


def _too_large(limit: int, start_response):
    body = json.dumps(problem_body(413, "body_too_large", f"The request body is larger than {limit} bytes.")).encode()
    start_response(
        "413 Request Entity Too Large",
        [("Content-Type", PROBLEM_CONTENT_TYPE), ("Content-Length", str(len(body))), ("Connection", "close")],
    )
    return [body]
