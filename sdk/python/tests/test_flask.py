"""rio_client.flask.webhook_required with Flask's test client."""

import time

import pytest
from flask import Flask, jsonify, request

from rio_client import webhook
from rio_client.flask import webhook_required

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
BODY = "ip=127.0.0.1&content=I+am+a+spammer"


def make_app(secret=SECRET):
    app = Flask(__name__)
    seen = []

    @app.route("/hook", methods=["POST"])
    @webhook_required(secret)
    def hook():
        seen.append((request.form["ip"], request.form["content"]))
        return jsonify(status="success", retval=0)

    return app, seen


def signed_headers(secret=SECRET, body=BODY, timestamp=None, msg_id="6c1e1d2a"):
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook.sign(secret, msg_id, timestamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def post(app, headers, body=BODY):
    return app.test_client().post("/hook", data=body, headers=headers)


def test_signed_request_reaches_the_view_with_its_form():
    app, seen = make_app()
    response = post(app, signed_headers())
    assert response.status_code == 200
    assert response.get_json() == {"status": "success", "retval": 0}
    assert seen == [("127.0.0.1", "I am a spammer")]


@pytest.mark.parametrize("headers, body, why", [
    (signed_headers(), BODY.replace("spammer", "friend"), "no webhook-signature entry matches"),
    (signed_headers(secret=OTHER_SECRET), BODY, "no webhook-signature entry matches"),
    (signed_headers(timestamp=int(time.time()) - 3600), BODY, "more than 300 seconds"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, BODY, "missing webhook-id header"),
])
def test_bad_requests_get_401_and_never_reach_the_view(headers, body, why, caplog):
    app, seen = make_app()
    response = post(app, headers, body)
    assert response.status_code == 401
    assert response.get_json() == {"status": "error", "error": "invalid webhook signature"}
    assert seen == []
    assert any(why in r.getMessage() for r in caplog.records), caplog.text


QUERY = "ip=127.0.0.1&content=I+am+a+spammer"


def make_get_app():
    app = Flask(__name__)
    seen = []

    @app.route("/hook", methods=["GET", "POST"])
    @webhook_required(SECRET)
    def hook():
        seen.append((request.method, request.values["ip"], request.values["content"]))
        return jsonify(status="success", retval=0)

    return app, seen


def get(app, headers, query=QUERY):
    # query_string as bytes goes on the request line exactly as given.
    return app.test_client().get("/hook", query_string=query.encode(), headers=headers)


def test_a_get_is_verified_over_its_query_string():
    app, seen = make_get_app()
    headers = signed_headers(body=QUERY)
    del headers["Content-Type"]
    assert get(app, headers).status_code == 200
    # The same view still verifies a POST over its body.
    assert post(app, signed_headers()).status_code == 200
    assert seen == [("GET", "127.0.0.1", "I am a spammer"), ("POST", "127.0.0.1", "I am a spammer")]


@pytest.mark.parametrize("query", [
    QUERY.replace("spammer", "friend"),
    QUERY + "&admin=1",
    "content=I+am+a+spammer&ip=127.0.0.1",  # same fields, other bytes
    "",
])
def test_a_get_with_a_tampered_query_string_gets_401(query, caplog):
    app, seen = make_get_app()
    response = get(app, signed_headers(body=QUERY), query)
    assert response.status_code == 401
    assert seen == []
    assert any("no webhook-signature entry matches" in r.getMessage() for r in caplog.records)


def test_a_get_signed_over_its_empty_body_gets_401():
    app, seen = make_get_app()
    assert get(app, signed_headers(body="")).status_code == 401
    assert seen == []


def test_secret_from_app_config_and_environment(monkeypatch):
    app, seen = make_app(secret=None)
    monkeypatch.setenv("RIO_WEBHOOK_SECRET", OTHER_SECRET)
    assert post(app, signed_headers(OTHER_SECRET)).status_code == 200
    app.config["RIO_WEBHOOK_SECRET"] = SECRET  # config beats the environment
    assert post(app, signed_headers(OTHER_SECRET)).status_code == 401
    assert post(app, signed_headers(SECRET)).status_code == 200
    assert len(seen) == 2


def test_missing_secret_is_a_setup_error(monkeypatch):
    monkeypatch.delenv("RIO_WEBHOOK_SECRET", raising=False)
    app, _ = make_app(secret=None)
    app.testing = True  # let the exception through
    with pytest.raises(RuntimeError, match="no secret"):
        post(app, signed_headers())


def test_decorator_without_parentheses_is_refused():
    with pytest.raises(TypeError, match="parentheses"):
        webhook_required(lambda: None)
