import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentflow_site.settings")
application = get_wsgi_application()

from runtime.providers.preload import preload  # noqa: E402

preload()
