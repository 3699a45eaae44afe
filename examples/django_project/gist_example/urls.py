"""URLs: ``/``, ``/me/teammates`` (logged-in users only), the admin, then the Gist login's ``/auth/gist`` and
``/oauth/gist/callback``."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from gist_authlib.django import gist_urls

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("me/teammates", views.my_teammates, name="my_teammates"),
    path("admin/", admin.site.urls),
    # No on_login: a login logs the workspace's Django user in and goes on to ?next= or LOGIN_REDIRECT_URL.
    # on_install: installs started inside Gist are stored by workspace, then acknowledged (None).
    path("", include(gist_urls(views.gist, on_install=lambda request, token, workspace_id: None))),
]
