from django.apps import AppConfig
from django.conf import settings


class AgentflowSiteConfig(AppConfig):
    name = "agentflow_site"
    verbose_name = "AgentFlow"

    def ready(self) -> None:
        from agentflow_site import checks, schema  # noqa: F401  (registration side effects)
        from agentflow_site.runtime_config import configure_runtime

        configure_runtime()
        from agentflow_site.observability.tracing import setup_tracing

        setup_tracing(settings.AGENTFLOW_TRACING)  # before Django loads its middleware
        from agentflow_site.observability import metrics

        metrics.configure()
