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
END $$;
SQL
  export SB_TEST_POSTGRES_URL="${SB_TEST_POSTGRES_URL:-postgres://switchboard_test:switchboard_test@127.0.0.1:$port/postgres}"
}
