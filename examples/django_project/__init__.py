"""The Django example project (``manage.py`` and the ``gist_example`` project package).

This file only makes the project ship inside the gist_authlib package; Django itself sees a plain project:
``manage.py`` and ``gist_example.wsgi`` put this folder on ``sys.path`` and use ``gist_example.settings``.
"""
