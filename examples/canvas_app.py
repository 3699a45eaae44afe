"""The canvas app example; the whole app is gist_authlib/examples/canvas_app.py (see README.md here).

    GIST_CLIENT_SECRET=... uvicorn --factory examples.canvas_app:create_app --port 8001
    python examples/canvas_app.py
"""

from gist_authlib.examples.canvas_app import create_app

__all__ = ["create_app"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("gist_authlib.examples.canvas_app", run_name="__main__")
