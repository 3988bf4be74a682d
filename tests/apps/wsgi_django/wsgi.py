"""The Django project's WSGI entry point: wsgi_django.wsgi:application."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "wsgi_django.settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
