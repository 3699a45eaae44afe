"""The Starlette example; the whole app is gist_authlib/examples/starlette_app.py (see README.md here).

    uvicorn --factory examples.starlette_app:create_app --port 8000
    python examples/starlette_app.py
"""

from gist_authlib.examples.starlette_app import create_app

__all__ = ["create_app"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("gist_authlib.examples.starlette_app", run_name="__main__")
