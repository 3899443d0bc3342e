"""The redactor masks known secrets and the shapes of unknown ones."""

import logging

from procore_sync.errors import AuthenticationFailed
from procore_sync.redact import MASK, RedactingFilter, redact, register_secret
from procore_sync.settings import Settings


def test_registered_secret_is_masked_anywhere() -> None:
    register_secret("s3cr3t-value-123")
    assert redact("form client_id=a&x=s3cr3t-value-123&y=1") == f"form client_id=a&x={MASK}&y=1"


def test_settings_register_their_client_secret() -> None:
    Settings(client_secret="from-settings-987654")
    assert "from-settings-987654" not in redact("secret is from-settings-987654")


def test_unknown_secrets_are_masked_by_shape() -> None:
    text = 'Authorization: Bearer abc.def-123 {"access_token": "tok-1"} client_secret=xyz&a=1'
    cleaned = redact(text)
    for secret in ("abc.def-123", "tok-1", "xyz"):
        assert secret not in cleaned
    assert "a=1" in cleaned


def test_errors_and_log_records_are_redacted() -> None:
    register_secret("leaky-token-4242")
    error = AuthenticationFailed("token leaky-token-4242 refused", url="http://h/?access_token=leaky-token-4242")
    assert "leaky-token-4242" not in str(error)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s", ("leaky-token-4242",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == f"sent {MASK}"
