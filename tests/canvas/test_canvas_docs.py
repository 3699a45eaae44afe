"""docs/CANVAS.md's snippets run as written: each framework's, with the page's handlers, answers Gist."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import types
from pathlib import Path
from typing import Any

import httpx2
import pytest

from gist_authlib import GistProvider

ROOT = Path(__file__).resolve().parents[2]
SECRET = "docs-canvas-secret-" + "d" * 20
BODY = json.dumps({"workspace_id": 1, "contact": {"id": 5, "name": "Beatrix"}, "context": {"location": "inbox"}})


def snippets() -> dict[str, str]:
    """The first python block under each heading of docs/CANVAS.md."""
    found: dict[str, str] = {}
    heading = ""
    for part in re.split(r"^(#{2,3} .+)$", (ROOT / "docs" / "CANVAS.md").read_text(), flags=re.MULTILINE):
        if part.startswith("#"):
            heading = part.lstrip("#").strip()
            continue
        block = re.search(r"```python\n(.*?)```", part, flags=re.DOTALL)
        if block and heading not in found:
            found[heading] = block.group(1)
    return found


def signed(body: str) -> dict[str, str]:
    return {"X-Gist-Signature": "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()}


def post_all(send: Any) -> list[httpx2.Response]:
    submit = json.dumps({**json.loads(BODY), "component_id": "order:1", "stored_data": {"opened": 2}})
    return [
        send("/gist/canvas/initialize", BODY, signed(BODY)),
        send("/gist/canvas/submit", submit, signed(submit)),
        send("/gist/canvas/initialize", BODY, {}),
    ]


def texts(response: httpx2.Response) -> list[str]:
    return [c.get("text") or c.get("label") for c in response.json()["canvas"]["content"]["components"]]


@pytest.mark.parametrize("framework", ["Starlette", "FastAPI", "Flask", "Django"])
def test_each_frameworks_snippet_serves_the_handlers(framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIST_CLIENT_SECRET", SECRET)
    blocks = snippets()
    namespace: dict[str, Any] = {"__name__": "canvas_docs_snippet"}
    exec(blocks["Your handlers"], namespace)
    exec(blocks[framework], namespace)

    if framework in ("Starlette", "FastAPI"):

        async def run() -> list[httpx2.Response]:
            transport = httpx2.ASGITransport(app=namespace["app"])
            async with httpx2.AsyncClient(transport=transport, base_url="http://app.test") as http:
                responses = []
                for path, body, headers in post_all(lambda *args: args):
                    responses.append(await http.post(path, content=body, headers=headers))
                return responses

        first, second, unsigned = asyncio.run(run())
    else:
        app = namespace["app"] if framework == "Flask" else _django(namespace["urlpatterns"])
        with httpx2.Client(transport=httpx2.WSGITransport(app=app), base_url="http://app.test") as http:
            first, second, unsigned = post_all(
                lambda path, body, headers: http.post(path, content=body, headers=headers)
            )
    assert first.status_code == 200 and texts(first)[0] == "**Orders of Beatrix**"
    assert first.json()["canvas"]["stored_data"] == {"opened": 0}
    assert second.status_code == 200 and texts(second)[0] == "You opened **order:1** (3 so far)"
    assert unsigned.status_code == 401


def _django(urlpatterns: list[Any]) -> Any:
    from django.core.handlers.wsgi import WSGIHandler, WSGIRequest

    urlconf = types.ModuleType("canvas_docs_urls")
    urlconf.urlpatterns = urlpatterns  # type: ignore[attr-defined]

    class Request(WSGIRequest):
        def __init__(self, environ: Any) -> None:
            super().__init__(environ)
            self.urlconf = urlconf  # per request: other tests rewrite the shared test URLconf

    class Handler(WSGIHandler):
        request_class = Request

    return Handler()


def test_the_provider_snippet_builds_an_intercom_style_provider() -> None:
    namespace: dict[str, Any] = {}
    exec(snippets()["What is confirmed about Gist's canvas, and what is not"], namespace)
    provider = namespace["provider"]
    assert isinstance(provider, GistProvider)
    assert (provider.canvas_signature_header, provider.canvas_signature_scheme) == ("X-Body-Signature", "")
