"""Our Standard Webhooks signer, checked against an independent implementation
(the ``standardwebhooks`` package)."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.webhooks.model import (
    DEFAULT_RETRY_SCHEDULE,
    RetryPolicy,
    new_secret,
    secret_key,
    sign,
    signed_headers,
)

BODY = b'{"type":"task.succeeded","timestamp":"2026-01-01T00:00:00Z","data":{"task":{}}}'


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


def test_signed_headers_verify_with_standardwebhooks() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signed_headers([secret], "msg_abc", now, BODY)
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers)["type"] == "task.succeeded"


@pytest.mark.parametrize(
    "change",
    [
        lambda h, b: (h, b.replace(b"succeeded", b"failed")),  # tampered body
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),  # another id
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
    ],
)
def test_any_change_breaks_the_signature(change: object) -> None:
    secret = new_secret()
    headers = signed_headers([secret], "msg_abc", int(time.time()), BODY)
    changed_headers, changed_body = change(headers, BODY)  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(changed_body, changed_headers)


def test_another_secret_does_not_verify() -> None:
    headers = signed_headers([new_secret()], "msg_abc", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_during_a_rotation_both_secrets_sign() -> None:
    old, new = new_secret(), new_secret()
    headers = signed_headers([new, old], "msg_abc", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)


def test_the_signature_is_the_spec_example() -> None:
    # The example of the Standard Webhooks specification's test vectors.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_a_malformed_secret_is_refused() -> None:
    with pytest.raises(InvalidInput):
        secret_key("whsec_not base64!")


def test_the_default_retry_schedule_is_the_specs() -> None:
    policy = RetryPolicy()
    assert policy.schedule == DEFAULT_RETRY_SCHEDULE
    assert policy.max_attempts == 10
    assert policy.first_delay() == 0
    assert policy.delay_after(1, lambda: 0.5) == 5
    assert policy.delay_after(9, lambda: 0.5) == 24 * 3600
    assert policy.delay_after(10, lambda: 0.5) is None  # the last attempt was made


def test_jitter_spreads_each_delay_within_its_fraction() -> None:
    policy = RetryPolicy(jitter=0.2)
    assert policy.delay_after(2, lambda: 0.0) == pytest.approx(240)
    assert policy.delay_after(2, lambda: 1.0) == pytest.approx(360)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
