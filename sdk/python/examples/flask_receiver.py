"""The original Rio's receiver: the seed's antispam_comment Flask view, with
Rio's signature checked before it runs.

    RIO_WEBHOOK_SECRET=whsec_... python3 flask_receiver.py [--port 5000]

Register it for the event (a FORM handler, the default, so the view reads
request.form as the seed's did):

    grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{"project": "comments",
        "event": "comment-published", "url": "http://127.0.0.1:5000/webhook/comment/antispam"}' \\
      127.0.0.1:50051 rio.v1.HandlerService/CreateHandler

and start it with the "secret" of the reply. Requests that Rio did not sign
get 401 and never reach the view.
"""

import argparse

from flask import Flask, jsonify, request

from rio_client.flask import webhook_required

app = Flask(__name__)

SPAM_WORDS = ("spammer", "casino", "free money")
banned_ips = set()


def is_spam_content(content):
    return any(word in content.lower() for word in SPAM_WORDS)


def ban_ip(ip):
    banned_ips.add(ip)
    print(f"banned {ip}", flush=True)


@app.route('/webhook/comment/antispam', methods=['POST'])
@webhook_required()  # the secret comes from $RIO_WEBHOOK_SECRET
def antispam_comment():
    if is_spam_content(request.form['content']):
        ban_ip(request.form['ip'])
    return jsonify(status='success', retval=0)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    args = parser.parse_args()
    app.run(host=args.host, port=args.port, threaded=True)
