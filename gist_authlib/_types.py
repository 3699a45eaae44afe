"""The type of a parsed JSON value, shared by every layer that reads or writes JSON."""

from __future__ import annotations

from typing import TypeAlias

#: What ``json.loads`` returns. A value that is only passed on (a body to send) is typed ``object`` instead:
#: a ``dict[str, str]`` is not a ``dict[str, JSON]``, dicts being invariant.
JSON: TypeAlias = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
