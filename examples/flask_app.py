"""The Flask example; the whole app is gist_authlib/examples/flask_app.py (see README.md here).

    flask --app examples.flask_app:create_app run --port 8000
    python examples/flask_app.py
"""

from gist_authlib.examples.flask_app import create_app

__all__ = ["create_app"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("gist_authlib.examples.flask_app", run_name="__main__")
