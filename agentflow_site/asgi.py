import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentflow_site.settings")
application = get_asgi_application()

# Pay for the provider SDKs' imports (seconds) at start, not in the first request.
from runtime.providers.preload import preload  # noqa: E402

preload()
