"""A Flask view decorator that lets only requests signed by Rio through.

    from rio_client.flask import webhook_required

    @app.route('/webhook/comment/antispam', methods=['POST'])
    @webhook_required('whsec_...')
    def antispam_comment():
        ...

The signature covers the raw body, or for a GET (a GET handler gets the
payload in the query string) the raw query string: the decorator checks
whichever the request's method calls for, so the same view may take both.
Requests that are unsigned, signed with another secret or older than the
tolerance get ``401 {"status": "error", "error": "invalid webhook signature"}``
and never reach the view; why is logged (app.logger, warning), not told to
the caller. Without a secret argument, the decorator reads
``app.config['RIO_WEBHOOK_SECRET']``, then ``$RIO_WEBHOOK_SECRET``, on each
request. Several secrets (a list) are accepted, for rotations done on the
receiver's side. Needs Flask (``pip install rio-client[flask]``).
"""

import functools
import os
from typing import Any, Callable, Optional, TypeVar

from flask import current_app, jsonify, request

from . import webhook

__all__ = ["webhook_required"]

F = TypeVar("F", bound=Callable[..., Any])


def _secret(configured: Optional[webhook.Secrets]) -> webhook.Secrets:
    if configured is not None:
        return configured
    secret = current_app.config.get("RIO_WEBHOOK_SECRET") or os.environ.get("RIO_WEBHOOK_SECRET")
    if not secret:
        raise RuntimeError(
            "webhook_required has no secret: pass it, or set app.config['RIO_WEBHOOK_SECRET'] "
            "or $RIO_WEBHOOK_SECRET"
        )
    return secret


def webhook_required(
    secret: Optional[webhook.Secrets] = None, *, tolerance: int = webhook.DEFAULT_TOLERANCE
) -> Callable[[F], F]:
    """Decorates a Flask view so that it runs only for verified Rio requests."""
    if callable(secret):
        raise TypeError("use @webhook_required() or @webhook_required(secret), with parentheses")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.method == "GET":
                content = request.query_string  # raw bytes, as sent
            else:
                # cache=True keeps the raw body for request.form / get_json later.
                content = request.get_data(cache=True)
            try:
                webhook.check(_secret(secret), request.headers, content, tolerance=tolerance)
            except webhook.WebhookVerificationError as error:
                current_app.logger.warning("rejected webhook request: %s", error.message)
                return jsonify(status="error", error="invalid webhook signature"), 401
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
