"""The package version and the User-Agent every request of the package carries (the bottom layer)."""

from __future__ import annotations

__all__ = ["USER_AGENT", "__version__"]

__version__ = "0.1.0"
#: Sent on every request to Gist: the token exchange, the token info lookup and the REST client.
USER_AGENT = f"gist-authlib/{__version__}"
