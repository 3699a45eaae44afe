"""The Django app ``gist_authlib.django``: Gist tokens in the project's database, Django users from Gist logins."""

from __future__ import annotations

from collections.abc import Sequence

from django.apps import AppConfig
from django.core import checks


class GistAuthlibConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """``"gist_authlib.django"`` in ``INSTALLED_APPS``: its models (tokens, workspace links), migrations and admin.

    The label is ``gist_authlib``, so that the tables are ``gist_authlib_*`` and nothing is named plain ``django``.
    """

    name = "gist_authlib.django"
    label = "gist_authlib"
    verbose_name = "Gist"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(check_backend, checks.Tags.security)


BACKEND = "gist_authlib.django.GistBackend"


def check_backend(app_configs: Sequence[AppConfig] | None = None, **kwargs: object) -> list[checks.CheckMessage]:
    """``manage.py check``: with ``django.contrib.auth`` installed, Gist logins log Django users in only when
    :class:`~gist_authlib.django.GistBackend` is in ``AUTHENTICATION_BACKENDS``."""
    from django.apps import apps
    from django.conf import settings

    if not apps.is_installed("django.contrib.auth") or BACKEND in settings.AUTHENTICATION_BACKENDS:
        return []
    return [
        checks.Warning(
            f"{BACKEND} is not in AUTHENTICATION_BACKENDS, so a Gist login cannot log a Django user in.",
            hint=f'Add "{BACKEND}" to AUTHENTICATION_BACKENDS (beside ModelBackend), or pass on_login= to gist_urls().',
            id="gist_authlib.W001",
        )
    ]
