"""The example apps, complete and runnable; ``gist-authlib demo`` serves them, from a checkout or a wheel.

Each module is a whole app built by ``create_app(environ)`` from ``GIST_*`` settings, so the same file runs
against real Gist, the sandbox, or any server that speaks the same protocol:

=========================  =====================================================================
``starlette_app``          Log in with Gist, teammates, tokens in an encrypted SQLite store
``fastapi_app``            the same with FastAPI, and a dependency that gives a view the token
``flask_app``              the same with Flask (an application factory)
``django_project/``        a Django project: Gist logins as Django users, the admin
``canvas_app``             a Gist app whose canvas shows in Gist's inbox beside a conversation
``multi_provider``         Gist beside a second OAuth 2 provider in one Authlib registry
``sync_contacts``          a script: upsert contacts from a CSV file, safe to re-run
=========================  =====================================================================

Run one with ``uvicorn --factory gist_authlib.examples.starlette_app:create_app`` (or ``python -m
gist_authlib.examples.starlette_app``). Importing this package imports no web framework.
"""
