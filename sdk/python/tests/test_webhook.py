"""rio_client.webhook against the Standard Webhooks test vector and every way
a request can fail to verify."""

import pytest

from rio_client import RioError, WebhookVerificationError, webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


def headers(signature=SIGNATURE, msg_id=MSG_ID, timestamp=TIMESTAMP):
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_standard_webhooks_vector_verifies():
    assert webhook.verify(SECRET, headers(), BODY, now=TIMESTAMP)
    webhook.check(SECRET, headers(), BODY, now=TIMESTAMP)


def test_sign_reproduces_the_vector():
    assert webhook.sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    assert webhook.sign(SECRET, MSG_ID, str(TIMESTAMP), BODY.decode()) == SIGNATURE


def test_secret_without_prefix_and_str_body_verify():
    assert webhook.verify(SECRET[len("whsec_"):], headers(), BODY.decode(), now=TIMESTAMP)


def test_tampered_body_is_rejected():
    assert not webhook.verify(SECRET, headers(), b'{"test": 2432232315}', now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature entry matches"):
        webhook.check(SECRET, headers(), BODY + b" ", now=TIMESTAMP)


def test_tampered_id_is_rejected():
    assert not webhook.verify(SECRET, headers(msg_id="msg_other"), BODY, now=TIMESTAMP)


def test_old_timestamp_is_rejected():
    assert webhook.verify(SECRET, headers(), BODY, now=TIMESTAMP + 300)
    assert not webhook.verify(SECRET, headers(), BODY, now=TIMESTAMP + 301)
    with pytest.raises(WebhookVerificationError, match="more than 300 seconds"):
        webhook.check(SECRET, headers(), BODY, now=TIMESTAMP + 3600)


def test_future_timestamp_is_rejected():
    assert not webhook.verify(SECRET, headers(), BODY, now=TIMESTAMP - 301)


def test_tolerance_is_configurable():
    assert webhook.verify(SECRET, headers(), BODY, now=TIMESTAMP + 3600, tolerance=3600)


def test_current_time_is_the_default():
    # The vector is from 2021: with the real clock it is far too old.
    assert not webhook.verify(SECRET, headers(), BODY)


def test_wrong_secret_is_rejected():
    assert not webhook.verify(OTHER_SECRET, headers(), BODY, now=TIMESTAMP)


def test_every_v1_entry_is_checked():
    other = webhook.sign(OTHER_SECRET, MSG_ID, TIMESTAMP, BODY)
    # During a rotation Rio sends one entry per secret; either may match.
    for signature in (f"{other} {SIGNATURE}", f"{SIGNATURE} {other}",
                      f"v2,abc {other}  {SIGNATURE}"):
        assert webhook.verify(SECRET, headers(signature), BODY, now=TIMESTAMP)
    # Only v1 entries count.
    assert not webhook.verify(SECRET, headers(SIGNATURE.replace("v1,", "v2,")), BODY, now=TIMESTAMP)
    assert not webhook.verify(SECRET, headers(other), BODY, now=TIMESTAMP)


def test_several_secrets_are_accepted():
    assert webhook.verify([OTHER_SECRET, SECRET], headers(), BODY, now=TIMESTAMP)
    assert not webhook.verify([OTHER_SECRET], headers(), BODY, now=TIMESTAMP)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing):
    h = headers()
    del h[missing]
    with pytest.raises(WebhookVerificationError, match=f"missing {missing} header"):
        webhook.check(SECRET, h, BODY, now=TIMESTAMP)
    assert not webhook.verify(SECRET, h, BODY, now=TIMESTAMP)


@pytest.mark.parametrize("timestamp", [
    "", " ", "abc", "1614265330.5", "-1614265330", "+1614265330", "١٦١", "1e9", "0x5f",
    "1614265330abc",
    pytest.param("9" * 21, id="21 digits"),
    # Beyond a float: OverflowError in the arithmetic.
    pytest.param("9" * 400, id="400 digits"),
    # Beyond int()'s digit limit: ValueError.
    pytest.param("9" * 5000, id="5000 digits"),
    pytest.param("1" * 100000, id="100000 digits"),
])
def test_malformed_timestamp_is_rejected(timestamp):
    assert not webhook.verify(SECRET, headers(timestamp=timestamp), BODY, now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError, match="webhook-timestamp"):
        webhook.check(SECRET, headers(timestamp=timestamp), BODY, now=TIMESTAMP)


@pytest.mark.parametrize("timestamp", ["0", "1", "99999999999999999999", "00000000001614265330"])
def test_far_timestamps_are_stale_not_errors(timestamp):
    with pytest.raises(WebhookVerificationError, match="more than 300 seconds"):
        webhook.check(SECRET, headers(timestamp=timestamp), BODY, now=TIMESTAMP + 3600)


def test_timestamp_with_surrounding_space_verifies():
    assert webhook.verify(SECRET, headers(timestamp=f" {TIMESTAMP} "), BODY, now=TIMESTAMP)


def test_header_values_that_are_not_text_are_rejected():
    # A lone surrogate cannot be encoded: still a verification failure.
    with pytest.raises(WebhookVerificationError, match="webhook-id"):
        webhook.check(SECRET, headers(msg_id="msg_\udc80"), BODY, now=TIMESTAMP)
    assert not webhook.verify(SECRET, headers(msg_id="msg_\ud800"), BODY, now=TIMESTAMP)
    assert not webhook.verify(SECRET, headers(signature="v1,\udc80 v1,é"), BODY, now=TIMESTAMP)


# A GET handler gets the payload in the query string and an empty body: the
# signature covers the query string, the bytes after '?' as sent.
QUERY = b"static=1&content=I+am+a+spammer&n=2"


def test_a_get_request_is_verified_over_its_query_string():
    signed = headers(webhook.sign(SECRET, MSG_ID, TIMESTAMP, QUERY))
    assert webhook.verify(SECRET, signed, QUERY, now=TIMESTAMP)
    assert webhook.verify(SECRET, signed, QUERY.decode(), now=TIMESTAMP)
    # Not over the empty body.
    assert not webhook.verify(SECRET, signed, b"", now=TIMESTAMP)


@pytest.mark.parametrize("tampered", [
    b"static=1&content=I+am+a+friend&n=2",
    b"static=1&content=I+am+a+spammer&n=2&admin=1",
    b"content=I+am+a+spammer&n=2",
    b"static=1&content=I%20am%20a%20spammer&n=2",  # decodes the same, signs differently
    b"",
])
def test_a_tampered_query_string_is_rejected(tampered):
    signed = headers(webhook.sign(SECRET, MSG_ID, TIMESTAMP, QUERY))
    with pytest.raises(WebhookVerificationError, match="no webhook-signature entry matches"):
        webhook.check(SECRET, signed, tampered, now=TIMESTAMP)


def test_signed_content_is_the_query_string_for_get_only():
    assert webhook.signed_content("GET", b"", QUERY) == QUERY
    assert webhook.signed_content("get", b"", QUERY) == QUERY
    assert webhook.signed_content("POST", BODY, b"x=1") == BODY
    assert webhook.signed_content("PUT", BODY, b"") == BODY


def test_header_names_are_case_insensitive():
    title = {k.title(): v for k, v in headers().items()}
    assert webhook.verify(SECRET, title, BODY, now=TIMESTAMP)
    assert webhook.verify(SECRET, list(title.items()), BODY, now=TIMESTAMP)
    environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers().items()}
    assert webhook.verify(SECRET, environ, BODY, now=TIMESTAMP)


def test_malformed_secret_is_a_setup_error():
    with pytest.raises(ValueError, match="not base64"):
        webhook.verify("whsec_not*base64", headers(), BODY, now=TIMESTAMP)
    with pytest.raises(ValueError):
        webhook.verify([], headers(), BODY, now=TIMESTAMP)


def test_verification_error_is_a_rio_error():
    assert issubclass(WebhookVerificationError, RioError)
