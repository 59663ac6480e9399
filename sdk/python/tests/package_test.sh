#!/usr/bin/env bash
# Packaging test: installs sdk/python the documented offline way into a fresh
# venv (made from Debian's /usr/bin/python3 with --system-site-packages, so
# python3-grpcio and python3-protobuf satisfy the dependencies), then imports
# the installed package and runs the signature tests and one real emit with
# it (needs $RIO_SERVER_BINARY for the emit; ctest sets it).
set -euo pipefail

sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${RIO_SYSTEM_PYTHON:-/usr/bin/python3}"
work="$(mktemp -d /tmp/rio-sdk-python-package.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# pip builds in the source directory; build from a copy so that no build/ or
# *.egg-info appears in the tree.
mkdir "$work/src"
cp -r "$sdk/pyproject.toml" "$sdk/README.md" "$sdk/rio_client" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +

"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index --no-build-isolation "$work/src"

cd "$work"  # not the source tree: the import must find the installed copy
"$work/venv/bin/python" - "$work/venv" <<'PY'
import os, sys
venv = sys.argv[1]
import rio_client, rio_client.aio, rio_client.flask, rio_client.v1
from rio_client import Client, webhook
from rio_client._gen.rio.v1 import emit_pb2, emit_pb2_grpc
assert rio_client.__file__.startswith(venv), rio_client.__file__
assert emit_pb2.DESCRIPTOR.name == "rio/v1/emit.proto"
pkg = os.path.dirname(rio_client.__file__)
for f in ("py.typed", "_gen/rio/v1/emit_pb2.pyi", "_gen/rio/v1/emit_pb2_grpc.py"):
    assert os.path.exists(os.path.join(pkg, f)), f
site = os.path.dirname(pkg)
# Only rio_client is installed: no top-level rio or grpc package of ours.
assert not os.path.exists(os.path.join(site, "rio")), "a top-level rio package was installed"
assert sorted(d for d in os.listdir(site) if d.startswith("rio")) == \
    ["rio_client", "rio_client-%s.dist-info" % rio_client.__version__], os.listdir(site)
client = Client(DSN="http://sender:token@127.0.0.1:1/1/project")
assert client.project == "project"
print("installed rio_client", rio_client.__version__, "at", pkg)
PY

# The signature tests, and one emit through the real server, with the
# installed package (the tests' directory holds no rio_client).
cp -r "$sdk/tests" "$work/tests"
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider \
  "$work/tests/test_webhook.py" \
  "$work/tests/test_emit.py::test_emit_lands_at_a_real_receiver_signed"
