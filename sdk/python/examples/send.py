"""Emits the seed's event into Rio.

    RIO_DSN='rio://comments-app:TOKEN@127.0.0.1:50051/comments' python3 send.py
    python3 send.py --dsn 'http://comments-app:TOKEN@127.0.0.1:50051/1/comments' \\
        --ip 10.0.0.7 --content 'free money'

The DSN is the "dsn" of rio.v1.ProjectService/CreateSender's reply.
"""

import argparse
import sys

from rio_client import Client, RioError


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="sender DSN (default: $RIO_DSN)")
    parser.add_argument("--event", default="comment-published")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--content", default="I am a spammer")
    args = parser.parse_args()

    try:
        with Client(args.dsn) as client:
            result = client.emit(args.event, {'ip': args.ip, 'content': args.content})
    except RioError as error:
        sys.exit(f"send.py: {error}")
    print(f"emitted {result.message_id} to {result.handlers} handler(s)"
          + (" (duplicate)" if result.duplicate else ""))


if __name__ == "__main__":
    main()
