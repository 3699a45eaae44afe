"""ROOT_URLCONF of the test process's Django settings; each contract test fills ``urlpatterns``."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
