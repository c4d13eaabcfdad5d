import os
import sys

from django.core.asgi import get_asgi_application

# A tenant's heavy template runs on an evaluation thread of this process (runtime/nodes/base.py);
# every hop of a request between uvicorn's loop and Django's threads then waits for the GIL. At
# the default 5 ms switch interval a request's dozen hops could add up to ~80 ms; at 1 ms they
# stay near 10 ms, for a few per cent of a busy thread's speed.
sys.setswitchinterval(0.001)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentflow_site.settings")
django_application = get_asgi_application()

from agentflow_site.config import exit_if_misconfigured  # noqa: E402

exit_if_misconfigured()  # a web server runs no system checks: a bad setting stops it here

from agentflow_site.middleware import BodyLimitMiddleware  # noqa: E402  (needs the settings)
from agentflow_site.request_threads import RequestThreadMiddleware  # noqa: E402

# Around Django's handler, which reads a whole body before any view (or check) runs; and which
# would keep a thread for each request until its response is sent (an event stream: for hours).
application = BodyLimitMiddleware(RequestThreadMiddleware(django_application))

# Pay for the provider SDKs' imports (seconds) at start, not in the first request.
from runtime.providers.preload import preload  # noqa: E402

preload()
