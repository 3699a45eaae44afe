"""Real Chromium for the browser tests: the browsers of a run, the mark their modules carry, and whether a test
failed (a failed browser test saves a screenshot). tests/conftest.py holds the fixtures and the hooks that stop
Chromium."""

from __future__ import annotations

from typing import Any

import pytest

#: Debian's packages of Chromium (scripts/install-test-deps.sh); Playwright downloads nothing. The browser tests
#: run in Chromium's headless shell: the same Blink and V8 as the full browser, from the same Debian source
#: package and version, and what Playwright itself uses for headless runs; it takes a quarter of the full
#: browser's CPU. The SameSite cookie tests run in the full browser too (``full_chromium``), a whole login
#: through the consent page as a person would make it.
CHROMIUM_HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"
CHROMIUM = "/usr/bin/chromium"


class Chromium:
    """Playwright's driver and the browsers it launched, started when a test first asks for a browser and stopped
    after the last browser test of a run of them (``pytest_runtest_teardown`` in tests/conftest.py). The browser
    tests share a worker and run one after another, so the driver and each browser start once, not once per
    module. They are never left running: while Playwright's sync API is active it keeps an event loop marked
    running on the main thread, which would break every later test that calls ``asyncio.run``."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self._driver: Any = None
        self._browsers: dict[str, Any] = {}

    def browser(self, executable_path: str) -> Any:
        if self._driver is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright()
            self._driver = self._playwright.__enter__()
        if executable_path not in self._browsers:
            self._browsers[executable_path] = self._driver.chromium.launch(
                executable_path=executable_path, args=["--no-sandbox"]
            )
        return self._browsers[executable_path]

    def stop(self) -> None:
        try:
            while self._browsers:
                self._browsers.popitem()[1].close()
        finally:  # the driver stops even if a browser would not close
            if self._driver is not None:
                self._driver = None
                self._playwright.__exit__(None, None, None)


#: The one set of browsers of this process (the fixtures in tests/conftest.py start them, its hooks stop them).
SHARED_CHROMIUM = Chromium()


def uses_chromium(item: pytest.Item | None) -> bool:
    """Whether ``item`` is a browser test: in a module marked ``BROWSER_TESTS``, or asking for a browser."""
    if item is None:
        return False
    group = item.get_closest_marker("xdist_group")
    fixtures = set(getattr(item, "fixturenames", ()))
    return bool(group and group.args == ("chromium",)) or bool(fixtures & {"chromium_browser", "full_chromium"})


#: Every browser test module carries this mark: with xdist (``--dist loadgroup``) they all run on one worker,
#: module after module, so that Chromium and each module's servers start once instead of on both workers; the
#: other worker meanwhile takes the rest of the suite.
BROWSER_TESTS = pytest.mark.xdist_group("chromium")


def failed(request: pytest.FixtureRequest) -> bool:
    """Whether the test that ``request`` belongs to has failed so far (its setup or its call)."""
    return any(getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call"))
