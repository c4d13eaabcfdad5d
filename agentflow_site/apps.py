from django.apps import AppConfig


class AgentflowSiteConfig(AppConfig):
    name = "agentflow_site"
    verbose_name = "AgentFlow"

    def ready(self) -> None:
        from agentflow_site import checks, schema  # noqa: F401  (registration side effects)
        from agentflow_site.runtime_config import configure_runtime

        configure_runtime()
