from django.apps import AppConfig


class AgentflowSiteConfig(AppConfig):
    name = "agentflow_site"
    verbose_name = "AgentFlow"

    def ready(self) -> None:
        from agentflow_site import checks, schema  # noqa: F401  (registration side effects)
