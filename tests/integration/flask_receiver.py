"""The original Rio's example receiver, as a Flask app, for emit_test.

    python3 flask_receiver.py PORT RECORD_FILE

Serves POST /webhook/comment/antispam on 127.0.0.1:PORT. Each request's form
fields `content` and `ip`, and the Rio headers it came with, are appended to
RECORD_FILE as one JSON line (sorted keys).
"""

import json
import sys

from flask import Flask, jsonify, request

app = Flask(__name__)
record_path = None


@app.route('/webhook/comment/antispam', methods=['POST'])
def antispam():
    content = request.form['content']
    ip = request.form['ip']
    record = {
        'content': content,
        'ip': ip,
        'content_type': request.headers.get('Content-Type', ''),
        'webhook_id': request.headers.get('webhook-id', ''),
        'x_rio_event': request.headers.get('X-Rio-Event', ''),
    }
    with open(record_path, 'a', encoding='utf-8') as out:
        out.write(json.dumps(record, sort_keys=True) + '\n')
    return jsonify(status='success', retval=0)


def main():
    global record_path
    if len(sys.argv) != 3:
        sys.exit('usage: flask_receiver.py PORT RECORD_FILE')
    port = int(sys.argv[1])
    record_path = sys.argv[2]
    app.run(host='127.0.0.1', port=port, threaded=True)


if __name__ == '__main__':
    main()
