"""Fixtures and hooks of the whole suite: real servers on loopback ports, apps in four frameworks, a scripted
browser and real Chromium. The helpers they use live in tests/support/, one module per subject.

The tests sit in one folder per area (login/, client/, tokens/, canvas/, sandbox/, cli/, browser/, package/), with
no ``__init__.py``: pytest imports each test module by its file name, so no two test files may share one.

Starlette and FastAPI apps run under uvicorn, Flask and Django apps under werkzeug's WSGI server, each in
a thread on a port of its own; the sandbox runs beside them. Nothing is patched.
"""

from __future__ import annotations

import ast
import gc
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from support.adversarial import ADVERSARIAL
from support.browser import CHROMIUM, CHROMIUM_HEADLESS_SHELL, SHARED_CHROMIUM, uses_chromium
from support.in_memory import Memory
from support.servers import ServerPool
from support.stacks import FRAMEWORKS, ROUTES, Stack, build_stack

if not settings.configured:
    settings.configure(
        SECRET_KEY="django-test-secret-key-not-for-production",
        ROOT_URLCONF="support.django_urlconf",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        INSTALLED_APPS=["django.contrib.sessions"],
        # Used only by the tests of the gist_authlib.django app, which install it (support/django_project.py).
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{tempfile.mkdtemp(prefix='gist-django-')}/db"}
        },
        AUTHLIB_OAUTH_CLIENTS={},
        USE_TZ=True,
    )
    django.setup()

# CPython before 3.13 keeps the depth counter of ``ast.parse`` per interpreter, not per thread (gh-106905):
# a server thread formatting a traceback (3.11's carets parse each line) while this thread imports a module
# that pytest rewrites can fail that import with "SystemError: AST constructor recursion depth mismatch".
# The suite runs servers in threads beside its imports, so it lets one thread parse at a time.
if sys.version_info < (3, 13):
    _ast_parse = ast.parse
    _ast_lock = threading.RLock()

    def _serial_parse(*args: Any, **kwargs: Any) -> Any:
        with _ast_lock:
            return _ast_parse(*args, **kwargs)

    ast.parse = _serial_parse

# The cyclic garbage collector, tuned for a test process: the frameworks, the package and the collected tests make
# a large heap that never dies, and Python's default thresholds walked it again and again (about a tenth of the
# suite's CPU, measured on the contract, adversarial and client suites: 17.3 against 15.2 core-seconds, 3 pairs).
# Collections run less often, and once the tests are collected, what exists is set aside for good (gc.freeze).
gc.set_threshold(10_000, 20, 20)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Set aside everything made while collecting: later collections need not walk it."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may use. The suite is CPU-bound on 2 cores, and a third
    worker costs its own start and collection (about 5 core-seconds) and more switching than the waits it fills
    (medians of 5 cold runs: 60.5 s with 2 workers, 63.2 s with 3; 4 workers were slower still)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop Chromium if a run ended inside the browser tests (``-x``, an interrupt); in an xdist worker, hand this
    worker's adversarial figures to the controller."""
    SHARED_CHROMIUM.stop()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["adversarial"] = dict(ADVERSARIAL)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """In the xdist controller: add up the workers' figures (the "largest" ones are maxima, not sums)."""
    for key, value in getattr(node, "workeroutput", {}).get("adversarial", {}).items():
        ADVERSARIAL[key] = max(ADVERSARIAL[key], value) if key.startswith("largest") else ADVERSARIAL[key] + value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ADVERSARIAL:
        figures = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in sorted(ADVERSARIAL.items()))
        terminalreporter.write_line(f"adversarial suite (all frameworks): {figures}")


# --- headless Chromium, one per run ----------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """After a browser test's own teardown: stop Chromium unless the next test uses it too."""
    try:
        return (yield)
    finally:
        if not uses_chromium(nextitem):
            SHARED_CHROMIUM.stop()


@pytest.fixture
def chromium_browser() -> Any:
    """Headless Chromium (the headless shell); each test opens a context of its own, so no cookie or page is
    shared between tests."""
    return SHARED_CHROMIUM.browser(CHROMIUM_HEADLESS_SHELL)


@pytest.fixture
def full_chromium() -> Any:
    """The full Chromium browser, headless, for the tests that also run in it."""
    return SHARED_CHROMIUM.browser(CHROMIUM)


@pytest.fixture
def django_project() -> Iterator[None]:
    """The gist_authlib.django app installed in the suite's Django settings, with auth and the admin, over an empty
    migrated database (tests/support/django_project.py)."""
    from support.django_project import django_project

    with django_project():
        yield


#: Fixtures that start something costly once per worker (a PostgreSQL server: initdb and start): the tests that
#: use them share one xdist worker (``--dist loadgroup``), so it is started once, not once on every worker.
COSTLY_FIXTURES = {"postgres_url": "postgres"}


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server's test database, as a SQLAlchemy URL (one server per worker)."""
    from support.postgres import postgres_server

    with postgres_server() as url:
        yield url


#: Modules whose tests each run for seconds (subprocesses); with the groups, they are handed out first.
LONG_MODULES = ("test_bench.py", "test_testing_plugin.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests of costly fixtures, then put the long runners first: xdist hands out work in this order,
    and a long group handed out last would keep one worker busy after the others are done. It runs before
    xdist's own hook, which reads the groups once (into the tests' ids): after it, a group added here was
    ignored, and each worker started a PostgreSQL server of its own."""
    for item in items:
        for fixture, group in COSTLY_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: not (item.get_closest_marker("xdist_group") or item.path.name in LONG_MODULES))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so that a fixture can tell at teardown whether the test failed
    (the browser tests then save a screenshot of what the page showed)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# --- servers and stacks ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def memory() -> Iterator[Memory]:
    shared = Memory()
    yield shared
    shared.close()


@pytest.fixture
def make_stack(server_pool: ServerPool, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """Build a sandbox and an app; keyword arguments choose the framework and tune the parts (``wire="memory"``:
    in process, with no socket)."""
    servers: list[Any] = []

    def memory() -> Memory:
        return request.getfixturevalue("memory")  # type: ignore[no-any-return]

    yield lambda *args, **kwargs: build_stack(servers, server_pool, *args, memory=memory, **kwargs)
    for server in servers:
        server.stop()


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    """Each framework in turn."""
    return str(request.param)


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    """Each route style in turn: the library's routes per framework, and hand-written Authlib routes."""
    return str(request.param)


@pytest.fixture
def stack(make_stack: Callable[..., Stack], route: str) -> Stack:
    """The default stack for each route style: an auto-approving sandbox and an app with sessions."""
    return make_stack(route)
