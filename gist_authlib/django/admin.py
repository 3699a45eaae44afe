"""The admin's pages for the app: stored Gist tokens (never the token, nor its ciphertext) and workspace links."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin
from django.http import HttpRequest

from .models import GistToken, WorkspaceLink


@admin.register(GistToken)
class GistTokenAdmin(admin.ModelAdmin):  # type: ignore[misc]  # Django ships no type hints
    """Who has a stored token, for which workspace and scopes, and which key encrypted it. Read-only: tokens are
    written by logins; deleting one forgets it (the next API call needs a new login)."""

    list_display = ("subject", "workspace_id", "workspace_name", "scopes", "key_id", "updated")
    search_fields = ("subject", "workspace_id", "workspace_name")
    # The token's ciphertext and its hashes are left out of every page, list and form.
    fields = ("subject", "workspace_id", "workspace_name", "scopes", "key_id", "version", "created", "updated")
    readonly_fields = fields

    @admin.display(description="created")  # type: ignore[untyped-decorator]
    def created(self, token: GistToken) -> datetime:
        return datetime.fromtimestamp(token.created_at, UTC)

    @admin.display(description="updated", ordering="updated_at")  # type: ignore[untyped-decorator]
    def updated(self, token: GistToken) -> datetime:
        return datetime.fromtimestamp(token.updated_at, UTC)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: GistToken | None = None) -> bool:
        return False


@admin.register(WorkspaceLink)
class WorkspaceLinkAdmin(admin.ModelAdmin):  # type: ignore[misc]  # Django ships no type hints
    """Which Django user each Gist workspace logs in. Deleting a link lets the workspace's next login create (or
    connect) another user."""

    list_display = ("workspace_id", "workspace_name", "user", "linked_at", "last_login")
    search_fields = ("workspace_id", "workspace_name")
    raw_id_fields = ("user",)
    list_select_related = ("user",)
    readonly_fields = ("linked_at", "last_login")
