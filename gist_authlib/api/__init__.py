"""Typed resources of Gist's REST API, used through :class:`~gist_authlib.GistClient`."""

from __future__ import annotations

from .models import Contact, GistObject, Page, Tag, Team, Teammate, TokenInfo
from .resources import AsyncResources, Call, SyncResources

__all__ = [
    "AsyncResources",
    "Call",
    "Contact",
    "GistObject",
    "Page",
    "SyncResources",
    "Tag",
    "Team",
    "Teammate",
    "TokenInfo",
]
