"""Typed resources of Gist's REST API, used through :class:`~gist_authlib.GistClient`."""

from __future__ import annotations

from ._models import Contact, GistObject, Page, Tag, Team, Teammate, TokenInfo

__all__ = [
    "Contact",
    "GistObject",
    "Page",
    "Tag",
    "Team",
    "Teammate",
    "TokenInfo",
]
