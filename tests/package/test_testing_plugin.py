"""The pytest plugin (gist_authlib/testing.py), run as its users run it: pytester runs user-style test files.

The files for each framework are the snippets of docs/TESTING.md, verbatim, so the page runs as written. Each
Starlette, FastAPI and Flask run is in this process (``runpytest_inprocess``) with ``-p gist_authlib.testing``,
as the installed entry point would load it; the Django pages run under pytest-django, in a project of their own
with database sessions, in a subprocess. A sabotaged sandbox shows that the snippets' own assertions catch a
broken login, and a fixture around each test of an app built at import checks that its registration is put back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

# Imported here so that the in-process runs find them in sys.modules. pytester forgets every module a run
# imported, and a later import makes second copies of its classes: importing a framework afresh every time would
# be slow, and worse, code that kept the first copies stops recognising the second. httpx2 imports httpcore2 on
# its first request and keeps a map of httpcore2's exception classes: after a run that made the process's first
# request, "connection refused" escaped unmapped from every later test in the process.
import authlib.integrations.django_client
import authlib.integrations.flask_client
import authlib.integrations.starlette_client
import django.test
import fastapi.testclient
import flask
import httpcore2
import pytest
import starlette.testclient
import uvicorn

import gist_authlib.testing

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ["Starlette", "FastAPI", "Flask"]
PLUGIN = ("-p", "gist_authlib.testing", "-p", "no:cacheprovider", "-q")
#: The settings an app built at import reads from the environment, as a deployment would have them.
PRODUCTION_ENV = {"GIST_CLIENT_ID": "production-client-id", "GIST_CLIENT_SECRET": "production-client-secret"}

assert authlib.integrations.django_client and authlib.integrations.flask_client and flask  # imported for the runs
assert authlib.integrations.starlette_client and django.test and fastapi.testclient and starlette.testclient
assert httpcore2 and uvicorn


def page_section(heading: str) -> str:
    """The text of docs/TESTING.md under ``heading`` (a ``## `` or ``### `` line), up to the next heading."""
    page = (ROOT / "docs" / "TESTING.md").read_text()
    return re.split(r"\n#{2,3} ", page.split(f"\n{heading}\n", 1)[1], maxsplit=1)[0]


def snippet(framework: str) -> str:
    """The test file docs/TESTING.md shows for ``framework``."""
    blocks = re.findall(r"```python\n(.*?)```", page_section(f"## {framework}"), re.DOTALL)
    assert len(blocks) == 1, f"docs/TESTING.md should show one test file for {framework}"
    return str(blocks[0])


def page_files(heading: str) -> dict[str, str]:
    """The files docs/TESTING.md shows under ``heading``, by the path on each block's first line (``# myapp.py``)."""
    blocks = re.findall(r"```(?:python|ini)\n# ([\w/]+\.(?:py|ini))\b.*?\n(.*?)```", page_section(heading), re.DOTALL)
    files = {path: text for path, text in blocks}
    assert len(files) == len(blocks), f"docs/TESTING.md shows a file twice under {heading}"
    return files


def run_user_suite(
    pytester: pytest.Pytester, files: dict[str, str], conftest: str = "", *, around: str = ""
) -> pytest.RunResult:
    """Run the user's ``files`` (their ``conftest.py`` followed by ``conftest``) in the folder ``suite``, under a
    conftest of fixtures ``around`` them: pytest sets up the autouse fixtures of an outer conftest first, and
    tears them down last."""
    pytester.makeconftest(around)
    suite = pytester.mkdir("suite")
    (suite / "conftest.py").write_text(files.get("conftest.py", "") + conftest)
    for path, text in files.items():
        if path != "conftest.py":
            (suite / path).write_text(text)
    # Only the plugin under test: loading every installed plugin again for each run costs more than the run.
    environ = dict(os.environ)
    try:
        os.environ.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **PRODUCTION_ENV)
        return pytester.runpytest_inprocess(*PLUGIN)
    finally:  # what the run's conftest set (a module-level app's settings) does not outlive it
        for key in os.environ.keys() - environ.keys():
            del os.environ[key]
        os.environ.update(environ)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_snippet_for_each_framework_passes_as_written(pytester: pytest.Pytester, framework: str) -> None:
    result = run_user_suite(pytester, {"test_gist_login.py": snippet(framework)})
    result.assert_outcomes(passed=2)


SABOTAGE = """
import pytest


@pytest.fixture(autouse=True)
def gist_refuses_every_code(gist_sandbox):
    gist_sandbox.force_token_error(500)
"""


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_snippets_fail_when_the_login_breaks(pytester: pytest.Pytester, framework: str) -> None:
    # The code exchange fails: the login test must fail, and the other one (deny, or the expected failure) passes.
    result = run_user_suite(pytester, {"test_gist_login.py": snippet(framework)}, SABOTAGE)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED suite/test_gist_login.py::test_login_shows_the_workspace_teammates*"])


#: Around each test of an app built at import: set up before gist_sandbox (autouse, in an outer conftest), torn
#: down after it, it finds the registration holding its very objects again, with the settings read at import.
RESTORED = """

import importlib

import pytest

from gist_authlib import GistProvider


@pytest.fixture(autouse=True)
def the_registration_is_put_back():
    module = importlib.import_module("{module}")
    gist = getattr(module.gist, "_get_current_object", lambda: module.gist)()  # Flask's lazy proxy
    before = dict(vars(gist))
    assert gist.client_id == {client_id!r}
    yield
    assert vars(gist).keys() == before.keys()
    assert [key for key, value in before.items() if vars(gist)[key] is not value] == []
    assert gist.client_id == {client_id!r} and gist.authorize_url == GistProvider().authorize_url
"""
MODULE_LEVEL = {"Starlette and FastAPI": "myapp", "Flask": "myapp"}


@pytest.mark.parametrize("sabotaged", [False, True], ids=["as written", "sabotaged"])
@pytest.mark.parametrize("framework", MODULE_LEVEL)
def test_an_app_built_at_import_is_tested_as_the_page_shows(
    pytester: pytest.Pytester, framework: str, sabotaged: bool
) -> None:
    files = {**page_files("## Apps built at import time"), **page_files(f"### {framework}")}
    assert sorted(files) == ["conftest.py", "myapp.py", "test_myapp.py"]
    result = run_user_suite(
        pytester,
        files,
        SABOTAGE if sabotaged else "",
        around=RESTORED.format(module=MODULE_LEVEL[framework], client_id=PRODUCTION_ENV["GIST_CLIENT_ID"]),
    )
    if sabotaged:
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*FAILED suite/test_myapp.py::test_login_shows_the_workspace_teammates*"])
    else:
        result.assert_outcomes(passed=2)


def test_the_django_pages_run_under_pytest_django_with_nothing_exported(tmp_path: Path) -> None:
    """Both Django pages, as written, in one project whose users, sessions and tokens are in the database, with no
    GIST_* or Django setting in the environment: one run, with a copy of the tests under a sabotaged sandbox (only
    the three login tests may fail there). The development database is never created: the tests have their own."""
    files = page_files("### Django")
    assert sorted(files) == ["conftest.py", "mysite/settings.py", "mysite/urls.py", "pytest.ini", "test_mysite.py"]
    assert "SESSION_ENGINE" not in files["mysite/settings.py"]  # Django's default: sessions in the database
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "__init__.py").write_text("")
    for path in ("pytest.ini", "mysite/settings.py", "mysite/urls.py"):
        (tmp_path / path).write_text(files[path])
    # Around the tests, the registration is put back as it was built at import: with no client id, none exported.
    (tmp_path / "conftest.py").write_text(files["conftest.py"] + RESTORED.format(module="mysite.urls", client_id=None))
    for folder, conftest in (("as_written", ""), ("sabotaged", SABOTAGE)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
        (tmp_path / folder / "conftest.py").write_text(conftest)
        (tmp_path / folder / "test_mysite.py").write_text(files["test_mysite.py"])
        (tmp_path / folder / "test_gist_login.py").write_text(snippet("Django"))
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("GIST_", "DJANGO_", "PYTEST_ADDOPTS"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    command = [sys.executable, "-m", "pytest", "-p", "pytest_django.plugin", *PLUGIN, "-rfE"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert re.fullmatch(r"3 failed, 7 passed in [\d.]+s", summary), result.stdout + result.stderr
    failed = sorted(line.split(" - ")[0] for line in result.stdout.splitlines() if line.startswith("FAILED "))
    assert failed == [
        "FAILED sabotaged/test_gist_login.py::test_login_shows_the_workspace_teammates",
        "FAILED sabotaged/test_mysite.py::test_login_required_pages_go_through_the_gist_login",
        "FAILED sabotaged/test_mysite.py::test_login_shows_the_workspace_teammates",
    ]
    assert not (tmp_path / "db.sqlite3").exists()  # the developer's database: never touched


HELPERS = """
import pytest
from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from gist_authlib import GistClient, GistProvider
from gist_authlib.client import RetryPolicy
from gist_authlib.errors import RateLimitedError
from gist_authlib.starlette import gist_routes, stored_token
from gist_authlib.testing import SandboxLoginError
from gist_authlib.tokens import MemoryTokenStore


def create_app(gist, *, redirect=False):
    async def on_login(request, token):
        if redirect:
            return None  # a 303 to the next path
        return HTMLResponse("logged in")

    async def me(request: Request):
        # The token this session stored, and Gist's answer to it, passed through as they are.
        if await stored_token(request, gist) is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        answer = await gist.get(request.query_params.get("resource", "teammates"), request=request)
        retry_after = {"Retry-After": answer.headers["retry-after"]} if "retry-after" in answer.headers else None
        return JSONResponse(answer.json(), status_code=answer.status_code, headers=retry_after)

    return Starlette(
        routes=[Route("/me", me), *gist_routes(gist, on_login=on_login)],
        middleware=[Middleware(SessionMiddleware, secret_key="test-secret")],
    )


@pytest.fixture
def client(gist_sandbox):
    gist = gist_sandbox.register(
        OAuth(), scopes="read_teammates read_contact read_tags", token_store=MemoryTokenStore(plaintext=True)
    )
    return TestClient(create_app(gist))


def test_the_seeded_workspace_is_what_the_api_returns(gist_sandbox, client):
    assert gist_sandbox.login(client).status_code == 200
    names = [t["name"] for t in client.get("/me").json()["teammates"]]
    assert names == [t["name"] for t in gist_sandbox.teammates] == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
    contacts = client.get("/me", params={"resource": "contacts"}).json()["contacts"]
    assert len(contacts) == len(gist_sandbox.contacts) == 5
    tags = client.get("/me", params={"resource": "tags"}).json()["tags"]
    assert tags == gist_sandbox.tags == [{"id": 701, "name": "vip"}]


def test_a_revoked_token_gets_401(gist_sandbox, client):
    gist_sandbox.login(client)
    assert client.get("/me").status_code == 200
    assert gist_sandbox.revoke_all() == 1
    revoked = client.get("/me")
    assert revoked.status_code == 401 and revoked.json()["errors"][0]["code"] == "unauthorized"  # Gist's answer


def test_forced_rate_limit_and_server_errors_reach_the_app(gist_sandbox, client):
    assert gist_sandbox.login(client).text == "logged in"
    gist_sandbox.force_rate_limit(retry_after=7)
    gist_sandbox.force_server_error(502)
    limited = client.get("/me")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert client.get("/me").status_code == 502
    assert client.get("/me").status_code == 200


def test_one_test_leaves_the_sandbox_dirty(gist_sandbox):
    gist_sandbox.issue_token()
    gist_sandbox.force_server_error(count=3)
    gist_sandbox.teammates.clear()


def test_the_next_test_gets_a_fresh_sandbox(gist_sandbox):
    assert gist_sandbox.sandbox.tokens_issued == 0
    assert len(gist_sandbox.sandbox.api_faults) == 0
    assert len(gist_sandbox.teammates) == 3


def test_login_follows_the_apps_own_redirect_to_next(gist_sandbox):
    app = create_app(gist_sandbox.register(OAuth()), redirect=True)
    response = gist_sandbox.login(TestClient(app), "/auth/gist?next=/me")
    assert response.status_code == 401 and response.url.path == "/me"  # /me: no token store here
    assert gist_sandbox.login(TestClient(app), follow_redirects=False).status_code == 303


def test_a_custom_callback_and_a_new_scope(gist_sandbox):
    provider = GistProvider().with_scopes(["read_campaigns"])
    gist = gist_sandbox.register(OAuth(), "gist_eu", scopes="read_campaigns", provider=provider)

    async def on_login(request, token):
        return HTMLResponse("eu")

    app = Starlette(
        routes=gist_routes(gist, on_login=on_login, login_path="/eu/login", callback_path="/eu/callback"),
        middleware=[Middleware(SessionMiddleware, secret_key="test-secret")],
    )
    with pytest.raises(SandboxLoginError, match="Received: http://testserver/eu/callback"):
        gist_sandbox.login(TestClient(app), "/eu/login")
    gist_sandbox.allow_redirect_uri("http://testserver/eu/callback")
    assert gist_sandbox.login(TestClient(app), "/eu/login").text == "eu"


def test_a_route_that_is_not_a_login_is_named(gist_sandbox, client):
    with pytest.raises(SandboxLoginError, match="GET /nowhere answered HTTP 404"):
        gist_sandbox.login(client, "/nowhere")


def test_api_calls_alone_with_a_token_issued_directly(gist_sandbox):
    token = gist_sandbox.issue_token(["read_teammates"])
    policy = RetryPolicy(max_attempts=2, backoff_base=0, backoff_cap=0)
    with GistClient(token, base_url=gist_sandbox.provider.api_base_url, retry=policy) as api:
        gist_sandbox.force_rate_limit(retry_after=0)
        assert [t.name for t in api.teammates.list()] == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
        gist_sandbox.force_rate_limit(count=2, retry_after=0)
        with pytest.raises(RateLimitedError):
            api.teammates.list()
"""


def test_the_fixtures_helpers_in_a_user_suite(pytester: pytest.Pytester) -> None:
    result = run_user_suite(pytester, {"test_gist_login.py": HELPERS})
    result.assert_outcomes(passed=9)


def test_the_entry_point_loads_the_plugin_and_an_explicit_p_does_not_clash(tmp_path: Path) -> None:
    """What pip installs from pyproject.toml's entry point, laid out by hand (no install needed)."""
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert entry_points == {gist_authlib.testing.__name__: gist_authlib.testing.__name__}
    dist_info = tmp_path / "site" / "gist_authlib_plugin_check-0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: gist-authlib-plugin-check\nVersion: 0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[pytest11]\n{lines}")
    (tmp_path / "test_uses_it.py").write_text(
        textwrap.dedent(
            """
            def test_the_entry_point_brought_the_fixture(request, gist_sandbox):
                plugins = request.config.pluginmanager.list_plugin_distinfo()
                loaded = [(plugin.__name__, dist.metadata["Name"]) for plugin, dist in plugins]
                assert ("gist_authlib.testing", "gist-authlib-plugin-check") in loaded
                assert gist_sandbox.url.startswith("http://127.0.0.1:")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)

    def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_uses_it.py"]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)

    # One run, with the plugin named by the entry point and by -p at once, as in a suite whose configuration
    # names it: the test proves the entry point loaded it, and the run that no "already registered" error came.
    both = pytest_run("-p", "gist_authlib.testing")
    assert both.returncode == 0, both.stdout + both.stderr
    assert "1 passed" in both.stdout


def test_the_plugin_loads_without_the_testing_extra_and_says_what_to_install(tmp_path: Path) -> None:
    """pytest loads the plugin in every suite where gist_authlib is installed, with or without Starlette."""
    (tmp_path / "test_suite.py").write_text(
        "def test_unrelated():\n    assert True\n\n\ndef test_wants_the_sandbox(gist_sandbox):\n    pass\n"
    )
    code = (
        "import sys; sys.modules['starlette'] = None; import pytest; "  # as if Starlette were not installed
        "sys.exit(pytest.main(['-p', 'gist_authlib.testing', '-p', 'no:cacheprovider', '-q', 'test_suite.py']))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "1 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "needs Starlette and uvicorn: pip install 'gist-authlib[testing]'" in result.stdout
