"""The app's migrations (``python manage.py makemigrations gist_authlib`` writes them)."""
