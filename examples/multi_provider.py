"""The two-provider example; the whole app is gist_authlib/examples/multi_provider.py (see README.md here).

    uvicorn --factory examples.multi_provider:create_app --port 8000
    python examples/multi_provider.py
"""

from gist_authlib.examples.multi_provider import create_app

__all__ = ["create_app"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("gist_authlib.examples.multi_provider", run_name="__main__")
