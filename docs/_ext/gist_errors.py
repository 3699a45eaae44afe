"""A Sphinx extension: the table of every ``error_code`` gist_authlib can raise, generated from the package's code.

The ``{gist-errors}`` directive renders one row per code: the code (linked to the section that gives its cause and
its fix), the class that carries it (linked to the API reference), the OAuth ``error`` name and the HTTP status
of the page that reports it. The codes are found in the code itself, so the table cannot drift:

- every class under :class:`gist_authlib.GistAuthError` contributes its own ``error_code`` attribute;
- every class that lists ``error_codes`` (one per cause its constructor takes) contributes each;
- every call that passes ``error_code="..."`` (the classmethods of the error classes, and raises elsewhere)
  contributes that code, for the class it builds.

Each code needs a section labelled ``error-<code>`` (MyST: ``(error-state_expired)=`` above its heading): a code
without one is an undefined reference, and a section whose code no longer exists is reported too. Both are
warnings, which the suite's ``sphinx-build -W`` turns into a failed build.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOGGER = logging.getLogger(__name__)
LABEL_PREFIX = "error-"
DJANGO_APP_MODULES = tuple(f"gist_authlib.django.{name}" for name in ("models", "admin", "auth", "migrations"))


@dataclass(frozen=True)
class ErrorCode:
    """One ``error_code`` and what a caller sees with it."""

    code: str
    cls: type[Exception]
    error: str  # the OAuth ``error`` name, or a phrase when the other side names it
    status: int

    @property
    def class_path(self) -> str:
        """The class's public dotted path: its module without private parts (``gist_authlib.canvas._errors`` ->
        ``gist_authlib.canvas``)."""
        module = ".".join(part for part in self.cls.__module__.split(".") if not part.startswith("_"))
        return f"{module}.{self.cls.__name__}"


def _subclasses(root: type[Exception]) -> list[type[Exception]]:
    """``root`` and every class under it, depth first in the order they were declared (the tree's order)."""
    found = [root]
    for sub in root.__subclasses__():
        found.extend(cls for cls in _subclasses(sub) if cls not in found)
    return found


def _sets_error_itself(cls: type[Exception]) -> bool:
    """Whether the class's ``__init__`` always assigns ``self.error`` (it then carries the other side's name)."""
    init = cls.__dict__.get("__init__")
    if init is None:
        return False
    (function,) = ast.parse(inspect.cleandoc("\n" + inspect.getsource(init))).body
    assert isinstance(function, ast.FunctionDef)
    return any(  # a statement of the body itself, not one under an ``if``
        isinstance(target, ast.Attribute) and target.attr == "error"
        for statement in function.body
        if isinstance(statement, ast.Assign)
        for target in statement.targets
    )


def _keyword_codes(package: Path, classes: dict[str, type[Exception]]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every ``error_code="..."`` keyword in the package's source: (code, class name, the call's other constant
    keywords). ``cls(...)`` inside a class body builds that class."""
    found: list[tuple[str, str, dict[str, Any]]] = []

    def visit(node: ast.AST, owner: str | None) -> None:
        if isinstance(node, ast.ClassDef):
            owner = node.name
        if isinstance(node, ast.Call):
            keywords = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant) and k.arg}
            code = keywords.pop("error_code", None)
            if isinstance(code, str):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                built = owner if name == "cls" else name
                if built not in classes:
                    raise ValueError(f"error_code={code!r} is passed to {name!r}, which is no error class")
                found.append((code, built or "", keywords))
        for child in ast.iter_child_nodes(node):
            visit(child, owner)

    for path in sorted(package.rglob("*.py")):
        visit(ast.parse(path.read_text(), str(path)), None)
    return found


def error_codes() -> list[ErrorCode]:
    """Every ``error_code`` of gist_authlib, in the order of the error tree (depth first, as declared)."""
    from authlib.integrations.base_client import OAuthError

    import gist_authlib
    from gist_authlib.errors import GistAuthError

    package = Path(gist_authlib.__file__).parent
    for module in pkgutil.walk_packages([str(package)], "gist_authlib."):
        # The Django app's models, admin, backend and migrations import only in a configured Django project, and
        # define no error class (the codes they raise are found in their source below).
        if module.name.startswith(DJANGO_APP_MODULES):
            continue
        if module.name.split(".")[1] not in ("examples", "__main__"):
            importlib.import_module(module.name)  # every error class is defined, wherever it lives
    classes = {cls.__name__: cls for cls in _subclasses(GistAuthError)}

    def row(cls: type[Exception], code: str, error: object, status: object) -> ErrorCode:
        if not issubclass(cls, OAuthError):
            shown = "-"  # API, token-store and canvas errors are no OAuth errors: their ``error`` means nothing
        elif _sets_error_itself(cls) and error == cls.error:
            shown = "Gist's own"
        else:
            shown = str(error)
        return ErrorCode(code, cls, shown, int(status))  # type: ignore[call-overload]

    rows: dict[str, ErrorCode] = {}
    for cls in classes.values():
        if "error_code" in cls.__dict__:
            rows[cls.error_code] = row(cls, cls.error_code, cls.error, cls.status_code)  # type: ignore[attr-defined]
        for code in cls.__dict__.get("error_codes", ()):  # a class whose causes are its constructor's argument
            rows.setdefault(code, row(cls, code, cls.error, cls.status_code))  # type: ignore[attr-defined]
    for code, name, keywords in _keyword_codes(package, classes):
        cls = classes[name]
        rows.setdefault(
            code,
            row(cls, code, keywords.get("error", cls.error), keywords.get("status_code", cls.status_code)),  # type: ignore[attr-defined]
        )
    order = list(classes.values())
    return sorted(rows.values(), key=lambda r: (order.index(r.cls), r.code != r.cls.error_code))  # type: ignore[attr-defined]


class GistErrorsDirective(SphinxDirective):
    """``{gist-errors}``: the table of every error code, with links to each code's section."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        columns = ("error_code", "class", "error", "status")
        table = nodes.table(classes=["gist-errors"])
        group = nodes.tgroup(cols=len(columns))
        table += group
        for width in (3, 3, 3, 1):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += self._row([nodes.Text(title) for title in columns])
        group += head
        body = nodes.tbody()
        for entry in error_codes():
            code_ref = addnodes.pending_xref(
                "", refdomain="std", reftype="ref", reftarget=LABEL_PREFIX + entry.code, refexplicit=True,
                refwarn=True, refdoc=self.env.docname,
            )  # fmt: skip
            code_ref += nodes.literal(text=entry.code)
            class_ref = addnodes.pending_xref(
                "", refdomain="py", reftype="class", reftarget=entry.class_path, refexplicit=True, refwarn=True,
                refdoc=self.env.docname,
            )  # fmt: skip
            class_ref += nodes.literal(text=entry.cls.__name__)
            body += self._row([code_ref, class_ref, nodes.Text(entry.error), nodes.Text(str(entry.status))])
        group += body
        return [table]

    @staticmethod
    def _row(cells: list[nodes.Node]) -> nodes.row:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            paragraph = nodes.paragraph()
            paragraph += cell
            entry += paragraph
            row += entry
        return row


def _no_stale_sections(app: Sphinx, env: BuildEnvironment) -> None:
    """A section labelled ``error-<code>`` whose code the package no longer raises is a warning."""
    known = {entry.code for entry in error_codes()}
    labels = env.get_domain("std").labels  # type: ignore[attr-defined]
    for label, (docname, _anchor, _title) in sorted(labels.items()):
        if label.startswith(LABEL_PREFIX) and label[len(LABEL_PREFIX) :] not in known:
            LOGGER.warning("section %r describes an error_code gist_authlib no longer has", label, location=docname)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("gist-errors", GistErrorsDirective)
    app.connect("env-check-consistency", _no_stale_sections)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
