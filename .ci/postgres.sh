#!/usr/bin/env bash
# Throw-away PostgreSQL server for the test suite.
#
#   CONTEXTKIT_TEST_PG_URL=$(bash .ci/postgres.sh start)
#   trap 'bash .ci/postgres.sh stop "${CONTEXTKIT_TEST_PG_URL:-}"' EXIT
#
# Commands:
#   start        find (or, as root on Debian, install) the server binaries,
#                initdb a fresh cluster in a temporary directory, start it on
#                a free TCP port of 127.0.0.1, create the database
#                contextkit_test, check that "SELECT 1" works over TCP and
#                print exactly one line on stdout:
#                  postgresql+psycopg://postgres@127.0.0.1:<port>/contextkit_test
#   stop [URL|PORT]
#                stop that cluster and delete its directory; without an
#                argument, every cluster started by this script (same state
#                directory) is stopped.
#   list         print the URLs of the clusters this script started.
#   which        print the directory of the server binaries that would be
#                used, or say that they would be installed (exit 1).
#
# Everything except the final URL (start) and the list output goes to stderr.
#
# Environment knobs (all optional):
#   CONTEXTKIT_PG_BINDIR     use the server binaries in this directory
#   CONTEXTKIT_PG_USER       unprivileged user that runs the server when this
#                            script runs as root (default: postgres if it
#                            exists, else a system user "ckpg" is created)
#   CONTEXTKIT_PG_STATE_DIR  where the per-port state files live
#                            (default: /tmp/contextkit-pg-state.<uid>)
#   CONTEXTKIT_PG_VERIFY     "psql" (default when psql exists) or "python"
#   CONTEXTKIT_PG_DEBIAN_ROOT  Debian layout root (default /usr/lib/postgresql)
set -euo pipefail

# stdout is reserved for the result; everything else goes to stderr.
# fd 3 = the real stdout, fd 4 = the real stderr (for the failure trap, which
# may run while a command's output is redirected to a file).
exec 3>&1 4>&2 1>&2

readonly DB_NAME=contextkit_test
readonly DEBIAN_ROOT=${CONTEXTKIT_PG_DEBIAN_ROOT:-/usr/lib/postgresql}
readonly STATE_DIR=${CONTEXTKIT_PG_STATE_DIR:-/tmp/contextkit-pg-state.$(id -u)}
readonly BASE_PREFIX=/tmp/contextkit-pg.

# Connection settings from the caller's environment must not leak into the
# client commands used here.
unset PGDATA PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS \
      PGPASSWORD PGPASSFILE PGSERVICEFILE 2>/dev/null || true

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- binaries --

# A usable bin directory has initdb, pg_ctl and postgres side by side
# (pg_ctl looks for postgres in its own, symlink-resolved, directory).
have_server_bins() {
    local d=$1
    [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]
}

find_bindir() {
    local d p
    if [[ -n ${CONTEXTKIT_PG_BINDIR:-} ]]; then
        have_server_bins "$CONTEXTKIT_PG_BINDIR" \
            || die "CONTEXTKIT_PG_BINDIR=$CONTEXTKIT_PG_BINDIR lacks initdb/pg_ctl/postgres"
        printf '%s\n' "$CONTEXTKIT_PG_BINDIR"
        return 0
    fi
    # 1. Debian layout, newest major version first.
    local -a cands=()
    if [[ -d $DEBIAN_ROOT ]]; then
        while IFS= read -r d; do
            [[ -n $d ]] && cands+=("$d")
        done < <(find "$DEBIAN_ROOT" -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -rV)
    fi
    for d in "${cands[@]}"; do
        if have_server_bins "$d"; then
            printf '%s\n' "$d"
            return 0
        fi
    done
    # 2. PATH: the directory pg_ctl really lives in, then initdb's.
    for p in pg_ctl initdb postgres; do
        if p=$(command -v "$p" 2>/dev/null); then
            d=$(dirname -- "$(readlink -f -- "$p")")
            if have_server_bins "$d"; then
                printf '%s\n' "$d"
                return 0
            fi
        fi
    done
    return 1
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -q \
        -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "$@"
}

apt_update() {
    apt_get update && return 0
    log "apt-get update failed; retrying in 10s"
    sleep 10
    apt_get update
}

apt_install() {
    apt_get install -y --no-install-recommends "$@" && return 0
    log "apt-get install $* failed; refreshing the package lists and retrying"
    sleep 5
    apt_update
    apt_get install -y --no-install-recommends "$@"
}

install_server() {
    [[ $(id -u) -eq 0 ]] || die "no PostgreSQL server binaries found and not root: cannot install them"
    command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL server binaries found and no apt-get to install them"
    log "no PostgreSQL server binaries found; installing Debian's postgresql package"
    local t0; t0=$(now_ms)
    apt_update
    # postgresql-common first, so that the default cluster (which the server
    # package's post-install would create and start) can be turned off
    # before the server package is configured. The drop-in file is read
    # through the include_dir of /etc/postgresql-common/createcluster.conf.
    apt_install postgresql-common
    mkdir -p /etc/postgresql-common/createcluster.d
    printf '# written by contextkit .ci/postgres.sh: no default cluster\ncreate_main_cluster = false\n' \
        > /etc/postgresql-common/createcluster.d/contextkit-no-main-cluster.conf
    if command -v pg_conftool >/dev/null 2>&1 \
        && [[ $(pg_conftool /etc/postgresql-common/createcluster.conf show -bs create_main_cluster 2>/dev/null || true) != off ]]; then
        # Older layouts without include_dir: set it in the main file.
        log "createcluster.d is not read; setting create_main_cluster in createcluster.conf"
        pg_conftool /etc/postgresql-common/createcluster.conf set create_main_cluster false || true
    fi
    apt_install postgresql
    log "installed the server in $(( ($(now_ms) - t0) / 1000 ))s"
}

# ------------------------------------------------------------------- users --

# Sets RUN_USER: the account that owns and runs the cluster.
choose_user() {
    if [[ $(id -u) -ne 0 ]]; then
        RUN_USER=$(id -un)
        return 0
    fi
    if [[ -n ${CONTEXTKIT_PG_USER:-} ]]; then
        getent passwd "$CONTEXTKIT_PG_USER" >/dev/null || die "user $CONTEXTKIT_PG_USER does not exist"
        RUN_USER=$CONTEXTKIT_PG_USER
    elif getent passwd postgres >/dev/null; then
        RUN_USER=postgres
    else
        if ! getent passwd ckpg >/dev/null; then
            log "creating system user ckpg to run the server"
            useradd -r -M -d /nonexistent -s /usr/sbin/nologin ckpg \
                || getent passwd ckpg >/dev/null \
                || die "could not create user ckpg"
        fi
        RUN_USER=ckpg
    fi
    [[ $(id -u "$RUN_USER") -ne 0 ]] || die "refusing to run the server as a uid-0 user ($RUN_USER)"
}

# as_user USER DIR CMD... : run CMD in DIR as USER (directly when that is us).
as_user() {
    local user=$1 dir=$2
    shift 2
    # 3>&- 4>&-: the server must not inherit the real stdout/stderr, or
    # "$(postgres.sh start)" would wait for the server to exit.
    if [[ $(id -un) == "$user" ]]; then
        (cd "$dir" && "$@") 3>&- 4>&-
    elif [[ $(id -u) -eq 0 ]]; then
        if command -v runuser >/dev/null 2>&1; then
            (cd "$dir" && runuser -u "$user" -- "$@") 3>&- 4>&-
        else
            (cd "$dir" && setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@") 3>&- 4>&-
        fi
    else
        die "cannot act as user $user"
    fi
}

# ---------------------------------------------------------------- helpers --

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return
    fi
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 9<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    die "could not find a free TCP port"
}

port_open() {
    (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Minimal client for the PostgreSQL wire protocol (trust auth, simple query):
# used when psql is not available. Prints one line per row, fields joined by |.
pg_python_query() {
    local port=$1 db=$2 sql=$3
    command -v python3 >/dev/null 2>&1 || die "neither psql nor python3 available to talk to the server"
    python3 - "$port" "$db" "$sql" <<'PY'
import socket, struct, sys

port, db, sql = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=30)

def recv_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            sys.exit("connection closed by server")
        buf += chunk
    return buf

def messages():
    while True:
        kind = recv_exact(1)
        (length,) = struct.unpack("!i", recv_exact(4))
        yield kind, recv_exact(length - 4)

def fail(body):
    fields = dict((f[:1], f[1:]) for f in body.split(b"\0") if f)
    sys.exit("server error: " + fields.get(b"M", body).decode("utf-8", "replace"))

params = b"user\0postgres\0database\0" + db.encode() + b"\0\0"
s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
msgs = messages()
for kind, body in msgs:
    if kind == b"E":
        fail(body)
    if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
        sys.exit("server asks for a password; expected trust authentication")
    if kind == b"Z":
        break
q = sql.encode() + b"\0"
s.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
error = None
for kind, body in msgs:
    if kind == b"E":
        error = body
    elif kind == b"D":
        (n,) = struct.unpack("!h", body[:2])
        off, row = 2, []
        for _ in range(n):
            (ln,) = struct.unpack("!i", body[off:off + 4])
            off += 4
            row.append("" if ln < 0 else body[off:off + ln].decode())
            off += max(ln, 0)
        print("|".join(row))
    elif kind == b"Z":
        break
s.sendall(b"X\0\0\0\x04")
s.close()
if error is not None:
    fail(error)
PY
}

# run_sql PORT DB SQL : over TCP to 127.0.0.1, printing rows unaligned.
run_sql() {
    local port=$1 db=$2 sql=$3
    if [[ ${CONTEXTKIT_PG_VERIFY:-psql} != python && -n ${PSQL:-} ]]; then
        "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" -c "$sql"
    else
        pg_python_query "$port" "$db" "$sql"
    fi
}

state_file() { printf '%s/%s.state\n' "$STATE_DIR" "$1"; }

# read_state FILE : sets S_PORT S_BASE S_DATA S_PG_CTL S_USER S_URL
read_state() {
    local key val
    S_PORT= S_BASE= S_DATA= S_PG_CTL= S_USER= S_URL=
    while IFS='=' read -r key val; do
        case $key in
            PORT) S_PORT=$val ;;
            BASE) S_BASE=$val ;;
            DATA) S_DATA=$val ;;
            PG_CTL) S_PG_CTL=$val ;;
            USER) S_USER=$val ;;
            URL) S_URL=$val ;;
        esac
    done < "$1"
}

# A live process (a zombie waiting for its parent to reap it does not count).
pid_running() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# stop_cluster USER PG_CTL DATA BASE PORT : best effort, never fails.
stop_cluster() {
    local user=$1 pg_ctl=$2 data=$3 base=$4 port=$5 pid=
    if [[ -f $data/postmaster.pid ]]; then
        pid=$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)
        if ! as_user "$user" / "$pg_ctl" -D "$data" -m fast -t 30 -w stop >&2 2>&1; then
            log "pg_ctl stop -m fast failed for port $port; trying immediate"
            as_user "$user" / "$pg_ctl" -D "$data" -m immediate -t 15 -w stop >&2 2>&1 || true
        fi
        if [[ $pid =~ ^[0-9]+$ ]] && pid_running "$pid"; then
            log "postmaster $pid still alive; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
        fi
    fi
    # Only ever delete directories this script created.
    if [[ -n $base && $base == "$BASE_PREFIX"* && -d $base ]]; then
        rm -rf -- "$base"
    fi
    if [[ -n $port ]] && port_open "$port"; then
        log "warning: port $port still accepts connections after stop"
    fi
}

# ------------------------------------------------------------------ start --

cmd_start() {
    local t0; t0=$(now_ms)
    local bindir
    if [[ -n ${CONTEXTKIT_PG_BINDIR:-} ]] && ! have_server_bins "$CONTEXTKIT_PG_BINDIR"; then
        die "CONTEXTKIT_PG_BINDIR=$CONTEXTKIT_PG_BINDIR lacks initdb/pg_ctl/postgres"
    fi
    if ! bindir=$(find_bindir); then
        install_server
        bindir=$(find_bindir) || die "PostgreSQL server binaries still not found after installing"
    fi
    local version; version=$("$bindir/postgres" --version 2>/dev/null || echo "unknown version")
    log "using $bindir ($version)"

    PSQL=
    if [[ -x $bindir/psql ]]; then
        PSQL=$bindir/psql
    elif command -v psql >/dev/null 2>&1; then
        PSQL=$(command -v psql)
    fi

    choose_user
    log "server runs as user $RUN_USER"

    BASE=$(mktemp -d "${BASE_PREFIX}XXXXXXXX")
    local data=$BASE/data sock=$BASE/sock logfile=$BASE/postgres.log port=
    mkdir -p "$sock"
    if [[ $(id -un) != "$RUN_USER" ]]; then
        chown -R "$RUN_USER:$(id -gn "$RUN_USER")" "$BASE"
    fi
    chmod 700 "$BASE"

    # Until the URL is printed, any failure removes what was created.
    STARTED=0
    trap 'rc=$?; if [[ $STARTED -eq 0 ]]; then {
              log "start failed (exit $rc); cleaning up"
              [[ -f $logfile ]] && { log "--- server log ---"; tail -n 30 "$logfile" || true; }
              stop_cluster "$RUN_USER" "$bindir/pg_ctl" "$data" "$BASE" "$port"
              [[ -n $port ]] && rm -f "$(state_file "$port")"
          } >&4 2>&4; fi' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    log "initdb in $data"
    if ! as_user "$RUN_USER" "$BASE" "$bindir/initdb" -D "$data" -A trust -U postgres \
            --encoding UTF8 --locale C -N > "$BASE/initdb.log" 2>&1; then
        cat "$BASE/initdb.log" >&2 || true
        die "initdb failed"
    fi

    local attempt
    local log_lines
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        log_lines=0
        [[ -f $logfile ]] && log_lines=$(wc -l < "$logfile")
        if as_user "$RUN_USER" "$BASE" "$bindir/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start \
            -o "-k $sock -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            >&2 2>&1; then
            break
        fi
        if [[ $attempt -lt 5 ]] && tail -n "+$((log_lines + 1))" "$logfile" 2>/dev/null | grep -qi 'already in use'; then
            log "port $port was taken; retrying with another port"
            port=
            continue
        fi
        die "pg_ctl start failed"
    done

    mkdir -p "$STATE_DIR"
    local url="postgresql+psycopg://postgres@127.0.0.1:$port/$DB_NAME"
    {
        printf 'PORT=%s\n' "$port"
        printf 'BASE=%s\n' "$BASE"
        printf 'DATA=%s\n' "$data"
        printf 'PG_CTL=%s\n' "$bindir/pg_ctl"
        printf 'USER=%s\n' "$RUN_USER"
        printf 'URL=%s\n' "$url"
    } > "$(state_file "$port").tmp"
    mv -f "$(state_file "$port").tmp" "$(state_file "$port")"

    run_sql "$port" postgres "CREATE DATABASE $DB_NAME" >/dev/null \
        || die "could not create database $DB_NAME"
    local got
    got=$(run_sql "$port" "$DB_NAME" "SELECT 1") || die "SELECT 1 failed on $DB_NAME"
    [[ $got == 1 ]] || die "SELECT 1 returned '$got'"

    STARTED=1
    trap - EXIT INT TERM
    log "cluster up on 127.0.0.1:$port (data $data) in $(( ($(now_ms) - t0) )) ms"
    printf '%s\n' "$url" >&3
}

# ------------------------------------------------------------------- stop --

cmd_stop() {
    local arg=${1:-} port= f
    local -a files=()
    if [[ -n $arg ]]; then
        if [[ $arg =~ ^[0-9]+$ ]]; then
            port=$arg
        elif [[ $arg =~ @[^/:]*:([0-9]+)(/|$) ]]; then
            port=${BASH_REMATCH[1]}
        else
            die "cannot find a port in '$arg'"
        fi
        f=$(state_file "$port")
        if [[ ! -f $f ]]; then
            log "no cluster started by this script on port $port"
            return 0
        fi
        files=("$f")
    else
        shopt -s nullglob
        files=("$STATE_DIR"/*.state)
        shopt -u nullglob
        [[ ${#files[@]} -gt 0 ]] || { log "no clusters to stop"; return 0; }
    fi
    for f in "${files[@]}"; do
        read_state "$f"
        log "stopping cluster on port $S_PORT ($S_BASE)"
        stop_cluster "$S_USER" "$S_PG_CTL" "$S_DATA" "$S_BASE" "$S_PORT"
        rm -f -- "$f"
    done
}

cmd_list() {
    local f
    shopt -s nullglob
    for f in "$STATE_DIR"/*.state; do
        read_state "$f"
        printf '%s\n' "$S_URL" >&3
    done
}

cmd_which() {
    local d
    if d=$(find_bindir); then
        printf '%s\n' "$d" >&3
    else
        log "no server binaries found: start would install Debian's postgresql package"
        return 1
    fi
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop "${2:-}" ;;
    list) cmd_list ;;
    which) cmd_which ;;
    *) die "usage: $0 start | stop [URL|PORT] | list | which" ;;
esac
