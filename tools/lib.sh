# Shared by tools/run, tools/test and tools/bench: installs what is missing
# from Debian's packages, builds, and manages private PostgreSQL clusters.
# Source it; it defines functions only.

RIO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

RIO_PACKAGES=(
  cmake ninja-build ccache g++ pkg-config iproute2 openssl ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libcurl4-openssl-dev libpq-dev libssl-dev libyaml-cpp-dev libboost-dev
  postgresql libgtest-dev libgmock-dev
  python3-flask python3-grpcio python3-protobuf python3-pytest python3-venv
  python3-pip python3-setuptools python3-wheel
  ruby ruby-grpc ruby-google-protobuf ruby-grpc-tools ruby-minitest ruby-rack
  ruby-sinatra ruby-webrick rake
  nodejs chromium
)

rio_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

rio_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages that are not installed yet.
rio_install_deps() {
  local missing=()
  for pkg in "${RIO_PACKAGES[@]}" "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    rio_log "installing ${missing[*]}"
    rio_as_root apt-get update -qq
    rio_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# npm (Debian's, unless Node.js came with its own) and the browser tests'
# npm packages, exactly as tests/e2e/package-lock.json pins them.
rio_install_e2e_deps() {
  command -v npm >/dev/null 2>&1 || rio_install_deps npm
  local dir="$RIO_ROOT/tests/e2e"
  # npm ci records what it installed in node_modules/.package-lock.json.
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
      [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    rio_log "installing the browser tests' npm packages (npm ci in tests/e2e)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

# rio_build BUILD_DIR BUILD_TYPE [extra cmake args...]: configures once, then
# builds everything with ninja.
rio_build() {
  local dir="$1" type="$2"
  shift 2
  if [ ! -f "$dir/build.ninja" ]; then
    rio_log "configuring $dir ($type)"
    cmake -S "$RIO_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
  fi
  rio_log "building $dir"
  cmake --build "$dir" -- -j"$(nproc)"
}

rio_pg_bindir() {
  if [ -n "${RIO_PG_BINDIR:-}" ]; then echo "$RIO_PG_BINDIR"; return; fi
  ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1
}

# Runs a PostgreSQL tool as the postgres user when we are root (initdb
# refuses root).
rio_pg_run() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# rio_pg_start DIR PORT: initdb DIR/data on first use, then starts it on
# 127.0.0.1:PORT with its socket in DIR. Extra args go to postgres (-c ...).
rio_pg_start() {
  local dir="$1" port="$2"
  shift 2
  local bindir
  bindir="$(rio_pg_bindir)"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
  if ! rio_pg_run test -w "$dir"; then
    echo "error: the postgres user cannot write to $dir (is a parent directory private?); set RIO_STATE_DIR to a directory it can reach" >&2
    return 1
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rio_log "creating a private PostgreSQL cluster in $dir/data"
    rio_pg_run "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
  fi
  if rio_pg_run "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    return 0
  fi
  local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 $*"
  rio_pg_run "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$opts" -w -t 60 start >/dev/null
}

rio_pg_stop() {
  local dir="$1"
  rio_pg_run "$(rio_pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# Creates database NAME on the cluster at PORT unless it exists.
rio_pg_createdb() {
  local port="$1" name="$2"
  if ! psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE \"$name\"" >/dev/null
  fi
}

# A free TCP port on 127.0.0.1, below the kernel's ephemeral range (so no
# outgoing connection can be holding it) and unused by any socket now.
rio_free_port() {
  local port used
  used="$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)"
  for port in $(shuf -i 20000-32000 -n 100); do
    if ! grep -qx "$port" <<<"$used"; then
      echo "$port"
      return 0
    fi
  done
  return 1
}
