"""The FastAPI example; the whole app is gist_authlib/examples/fastapi_app.py (see README.md here).

    uvicorn --factory examples.fastapi_app:create_app --port 8000
    python examples/fastapi_app.py
"""

from gist_authlib.examples.fastapi_app import create_app

__all__ = ["create_app"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("gist_authlib.examples.fastapi_app", run_name="__main__")
