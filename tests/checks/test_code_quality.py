"""What the linters alone do not check (``nox -s lint`` runs ruff, mypy and import-linter, then these): no import
circle in the package, the examples under a user's ``mypy --strict``, and the types ``register()`` reveals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Every mypy run here shares one cache: the first (cold, on a fresh clone) analyses the dependencies, the others
#: reuse that. The runs share a worker (the xdist group), so they never write the cache at once.
MYPY = [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache")]
pytestmark = pytest.mark.xdist_group("mypy")


def test_no_import_circle_between_the_packages_modules() -> None:
    """No module of gist_authlib imports itself back, through any number of others.

    ``if TYPE_CHECKING:`` imports count: a circle only type checkers follow still ties the modules together (the
    sandbox's _app and _inbox were one, through a type annotation).
    """
    import grimp

    graph = grimp.build_graph("gist_authlib", cache_dir=None)
    circles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                circle = (module, *back[:-1])
                start = circle.index(min(circle))  # one name per circle, whichever module it was found from
                circles.add(" -> ".join((*circle[start:], *circle[: start + 1])))
    assert not circles, "Import circles:\n" + "\n".join(sorted(circles))


def test_examples_pass_mypy_strict() -> None:
    """The examples are what users copy: a user's ``mypy --strict`` must accept them as they are."""
    # The apps live in examples/ (shipped in the wheel as gist_authlib.examples, which the package's own mypy run
    # does not reach). The Django project is checked from its own folder as well, as its users run mypy there.
    django_project = ROOT / "examples" / "django_project"
    for target, cwd in [(["examples"], ROOT), (["gist_example"], django_project)]:
        result = subprocess.run(
            [*MYPY, "--strict", *target],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


PROBE = """
from authlib.integrations.starlette_client import OAuth
import gist_authlib
import gist_authlib.starlette
from gist_authlib import GistProvider

gist = gist_authlib.register(OAuth())
reveal_type(gist)
reveal_type(gist.gist_registration.provider)
reveal_type(gist.authorize_redirect)
reveal_type(GistProvider.at("http://127.0.0.1:8765"))
reveal_type(GistProvider().with_scopes({"read_campaigns": "List campaigns"}).at("http://127.0.0.1:8765"))
typed = gist_authlib.starlette.register(OAuth(), "typed")
reveal_type(typed)
reveal_type(typed.authorize_redirect)
reveal_type(typed.authorize_access_token)
"""


def test_what_a_users_mypy_sees(tmp_path: Path) -> None:
    """``register()`` and the provider reveal real types to a user's ``mypy --strict``, never ``Any``."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = subprocess.run(
        [*MYPY, "--strict", str(probe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if "Revealed type is " in line]
    revealed = [line.split("Revealed type is ")[1].strip('"') for line in lines]
    assert revealed[0] == "gist_authlib._registry.GistApp", result.stdout
    assert revealed[1] == "gist_authlib.provider.GistProvider"
    assert revealed[2].startswith("def (*args: Any, **kwargs: Any)"), revealed[2]
    assert revealed[3:5] == ["gist_authlib.provider.GistProvider"] * 2
    # The framework's own register() gives the declared class, whose login methods show their real parameters.
    assert revealed[5] == "gist_authlib.starlette.GistStarletteApp"
    assert "request: starlette.requests.Request" in revealed[6] and "next: str | None" in revealed[6], revealed[6]
    assert "subject:" in revealed[7] and "Coroutine" in revealed[7], revealed[7]
    assert "error" not in result.stdout, result.stdout
