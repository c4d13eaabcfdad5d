import io
import logging

import pytest

from agentflow_site.logging import REDACTED, scrub_text
from tests.conftest import IssuedKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_output():
    """Everything logged during the test, rendered by the real JSON formatter."""
    root = logging.getLogger()
    formatter = next(h.formatter for h in root.handlers if h.formatter is not None)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    logging.getLogger("django").addHandler(handler)
    yield stream
    root.removeHandler(handler)
    logging.getLogger("django").removeHandler(handler)


def test_no_log_line_holds_a_key_or_an_authorization_header(
    api, admin_key: IssuedKey, log_output, monkeypatch
) -> None:
    monkeypatch.setenv("ACME_OPENAI_API_KEY", "sk-live-verysecretvalue123")
    api.get("/api/v1/me", HTTP_X_API_KEY=admin_key.secret)
    api.get("/api/v1/me", HTTP_AUTHORIZATION=f"Api-Key {admin_key.secret}")
    api.get("/api/v1/me", HTTP_X_API_KEY=admin_key.prefix + ".wrongwrongwrongwrongwrongwrong12")
    log = logging.getLogger("agentflow.test")
    log.warning("calling with Authorization: Bearer abc.def and %s", admin_key.secret)
    log.error("boom", extra={"headers": {"X-API-Key": admin_key.secret}, "authorization": "x"})
    log.info("env value sk-live-verysecretvalue123 leaked?")
    text = log_output.getvalue()
    assert text.count("request_finished") == 3
    assert admin_key.prefix in text  # the public handle is logged, so a key can be traced
    assert admin_key.secret not in text
    assert admin_key.secret.partition(".")[2] not in text
    assert "abc.def" not in text
    assert "sk-live-verysecretvalue123" not in text
    assert text.count(REDACTED) >= 4


def test_scrub_text_keeps_ordinary_words() -> None:
    assert scrub_text("workflow support-desk ran in 2.5 s") == "workflow support-desk ran in 2.5 s"
