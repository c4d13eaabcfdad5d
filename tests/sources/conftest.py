import pytest


@pytest.fixture(autouse=True)
def trust_the_local_fakes(settings) -> None:
    """These tests point sources at fake provider servers on 127.0.0.1, as an operator who
    trusts a local model server would allow."""
    settings.AGENTFLOW_TRUSTED_PROVIDER_HOSTS = ["127.0.0.1"]
