"""`/api/docs/` works without internet: Swagger UI comes from our own static files (drf-spectacular-sidecar)."""

import re
from html.parser import HTMLParser

import httpx
import pytest


class References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.e2e
def test_the_api_docs_page_references_only_local_assets_and_they_are_served(start_process):
    # given the web process as deployed (DEBUG off, static files served by itself)
    web = start_process("web", WEB_CONCURRENCY="1", DEBUG="0")

    with httpx.Client(base_url=f"http://127.0.0.1:{web.port}", timeout=20) as client:
        # when a browser opens the docs page
        page = client.get("/api/docs/")
        parser = References()
        parser.feed(page.text)
        assets = {url: client.get(url) for url in parser.urls}

    # then the page names nothing outside this server, and every file it names is there
    assert page.status_code == 200
    assert not re.findall(r"(?:https?:)?//[^\s\"'<>]+", page.text), "the page loads something from elsewhere"
    assert any("swagger-ui-bundle" in url for url in assets)
    assert {url: answer.status_code for url, answer in assets.items()} == dict.fromkeys(assets, 200)
    assert all(answer.content for answer in assets.values())
