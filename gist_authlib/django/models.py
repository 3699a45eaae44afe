"""The app's tables: stored Gist tokens (encrypted), the links between Django users and Gist workspaces, and
what every instance of the site must share during a login (used states and codes, install attempts)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class GistToken(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """A Gist token as :class:`~gist_authlib.django.DjangoTokenStore` keeps it: Fernet ciphertext, never the token.

    The columns are those of the other stores (:data:`gist_authlib.tokens._base.COLUMNS`); times are Unix seconds,
    as the store's clock gives them. Read and write tokens through the store, not through this model.
    """

    subject = models.CharField(max_length=255, primary_key=True)
    token = models.TextField()  # Fernet ciphertext of the subject and token together
    key_id = models.CharField(max_length=64)  # the fingerprint of the key that encrypted it
    token_hash = models.CharField(max_length=64, db_index=True)  # SHA-256 of the access token
    refresh_hash = models.CharField(max_length=64, null=True, db_index=True)
    scopes = models.TextField()
    workspace_id = models.CharField(max_length=64, null=True, db_index=True)
    workspace_name = models.CharField(max_length=255, null=True)
    created_at = models.FloatField()
    updated_at = models.FloatField()
    version = models.BigIntegerField()
    lease_holder = models.CharField(max_length=64, null=True)
    lease_until = models.FloatField(null=True)

    class Meta:
        verbose_name = "Gist token"

    def __str__(self) -> str:
        return f"Gist token of {self.subject}"

    def __repr__(self) -> str:
        return f"<GistToken subject={self.subject!r} workspace_id={self.workspace_id!r} version={self.version}>"


class WorkspaceLink(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """A Gist workspace connected to a Django user: the user a login with that workspace logs in.

    A workspace belongs to one user (a Gist login identifies a workspace, not a person); a user may connect
    several workspaces.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gist_workspaces")
    workspace_id = models.CharField(max_length=64, unique=True)
    workspace_name = models.CharField(max_length=255, blank=True)
    linked_at = models.DateTimeField(auto_now_add=True)
    last_login = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "Gist workspace link"

    def __str__(self) -> str:
        return f"Gist workspace {self.workspace_id}"


class ConsumedValue(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """A used login state or code (its SHA-256 only), refused if it comes back before ``until``."""

    digest = models.CharField(max_length=64, primary_key=True)
    until = models.FloatField(db_index=True)


class InstallAttempts(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """A registration's Gist-initiated install attempts within the install limit's window, in one row: the row
    is updated first, so that every instance counts one attempt at a time."""

    registration = models.CharField(max_length=64, primary_key=True)
    #: ``[network, grace, at]`` triples, at most twice the limit's total.
    attempts = models.JSONField(default=list)
