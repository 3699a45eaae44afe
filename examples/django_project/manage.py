"""manage.py of the Django example; the whole project is gist_authlib/examples/django_project/ (see ../README.md).

    cd examples/django_project && python manage.py runserver 8000
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("gist_authlib.examples.django_project.manage", run_name="__main__")
