"""Credential values never leave a run: every form of them becomes `[redacted:NAME]`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from runtime.errors import ProviderError
from runtime.events import NodeFinished, RecordingObserver
from runtime.redaction import MIN_LENGTH, RedactingObserver, Redactor, known_secrets

KEY = "sk-canary-4f1e9a2b7c"
DSN = "postgresql://shop:pa55-w0rd-canary@db.internal:5432/shop"


def redactor() -> Redactor:
    return Redactor.of({"OPENAI_API_KEY": KEY, "SHOP_DSN": DSN})


def test_it_redacts_every_string_in_a_result_keys_included() -> None:
    value = {"a": [f"Bearer {KEY}", {"nested": KEY * 2}], KEY: 1, "n": 3}
    assert redactor().value(value) == {
        "a": ["Bearer [redacted:OPENAI_API_KEY]", {"nested": "[redacted:OPENAI_API_KEY]" * 2}],
        "[redacted:OPENAI_API_KEY]": 1,
        "n": 3,
    }


def test_a_result_without_a_secret_is_returned_as_it_is() -> None:
    value = {"rows": [{"id": 1, "name": "Ada"}]}
    assert redactor().value(value) is value


def test_it_redacts_the_encoded_forms_and_a_connection_strings_password() -> None:
    r = redactor()
    assert r.text("?key=sk-canary-4f1e9a2b7c") == "?key=[redacted:OPENAI_API_KEY]"
    assert r.text("url: postgresql://shop:pa55-w0rd-canary@db") == (
        "url: postgresql://shop:[redacted:SHOP_DSN]@db"
    )
    assert r.text(DSN) == "[redacted:SHOP_DSN]"  # whole, not just its password
    quoted = Redactor.of({"K": "a+b/c=d&e!"})
    assert quoted.text("q=a%2Bb%2Fc%3Dd%26e%21") == "q=[redacted:K]"


def test_a_value_with_json_escapes_is_still_found() -> None:
    r = Redactor.of({"K": 'quo"te\\back'})
    assert r.value({"echo": 'x quo"te\\back y'}) == {"echo": "x [redacted:K] y"}


def test_a_numeric_secret_is_redacted_where_it_is_a_number_too() -> None:
    r = Redactor.of({"PIN": "98765432"})
    assert r.value({"pin": 98765432, "other": 5}) == {"pin": "[redacted:PIN]", "other": 5}


def test_short_values_are_left_alone() -> None:
    r = Redactor.of({"USER": "x" * (MIN_LENGTH - 1)})
    assert not r
    assert r.text("xxxxx") == "xxxxx"


def test_errors_are_redacted_in_their_message_and_args() -> None:
    error = redactor().error(ProviderError(f"401: invalid key {KEY}"))
    assert error.message == "401: invalid key [redacted:OPENAI_API_KEY]"
    assert KEY not in str(error) and KEY not in repr(error)


def test_every_value_is_known_to_the_log_scrubber() -> None:
    redactor()
    assert (KEY, "[redacted:OPENAI_API_KEY]") in known_secrets()


def test_a_secret_split_across_streamed_tokens_never_goes_out() -> None:
    recorded = RecordingObserver()
    observer = RedactingObserver(recorded, redactor())
    deltas = ["The key is sk-can", "ary-4f1e", "9a2b7c, and sk-", "cana", "no secret."]

    async def stream() -> None:
        for delta in deltas:
            await observer.node_token("llm", delta)
        await observer.node_finished(
            NodeFinished("llm", "llm", 1, datetime.now(UTC), 0.1, "succeeded")
        )

    asyncio.run(stream())
    sent = "".join(delta for _, delta in recorded.tokens)
    assert sent == "The key is [redacted:OPENAI_API_KEY], and sk-canano secret."
    assert all(KEY[:8] not in delta for _, delta in recorded.tokens)


def test_the_held_back_end_of_a_stream_goes_out_when_its_node_finishes() -> None:
    recorded = RecordingObserver()
    observer = RedactingObserver(recorded, redactor())

    async def stream() -> None:
        await observer.node_token("llm", "ends with sk-ca")
        assert recorded.tokens == [("llm", "ends with ")]
        error = {"code": "provider_error", "message": f"bad key {KEY}"}
        finished = NodeFinished("llm", "llm", 1, datetime.now(UTC), 0.1, "failed", error=error)
        await observer.node_finished(finished)

    asyncio.run(stream())
    assert recorded.tokens == [("llm", "ends with "), ("llm", "sk-ca")]
    finished = recorded.finished()[0]
    message = "bad key [redacted:OPENAI_API_KEY]"
    assert finished.error == {"code": "provider_error", "message": message}
