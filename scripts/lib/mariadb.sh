# shellcheck shell=bash
# Sourced by scripts/test, scripts/demo and .ci/run: makes a MariaDB/MySQL server reachable and
# exports PHAB_SCIM_TEST_DATABASE_URL (mysql://user[:password]@host:port, no database).
#
#   source scripts/lib/mariadb.sh
#   ensure_mariadb            # returns non-zero (never exits) when no server can be had
#   stop_private_mariadb      # stops the private server this file started, if any
#   pause_private_mariadb     # SIGSTOP to that server: it hangs with its connections open
#   resume_private_mariadb    # SIGCONT: it goes on
#
# Order in ensure_mariadb:
#   1. PHAB_SCIM_TEST_DATABASE_URL, if it is set and answers SELECT 1;
#   2. the server on 127.0.0.1:3306, if root with an empty password answers over TCP
#      (used as it is: never reconfigured, never stopped);
#   3. a private mariadbd from the Debian packages (installed with apt-get when missing), with its
#      datadir, socket, pid file and log in ${PHAB_SCIM_STATE_DIR:-<repo>/.demo}/mariadb, on
#      127.0.0.1 port 3306 if free, else the first free port from 3307. It keeps running after
#      the script ends and is reused by the next call.
#
# Environment:
#   PHAB_SCIM_TEST_DATABASE_URL          tried first; overwritten with the server actually used
#   PHAB_SCIM_STATE_DIR                  state directory (default: <repo>/.demo)
#   PHAB_SCIM_FORCE_PRIVATE_MARIADB=1    skip steps 1 and 2 (debugging CI without a system server)
#   PHAB_SCIM_MARIADB_START_TIMEOUT      seconds to wait for the private server (default 60)
# Exported for callers: PHAB_SCIM_TEST_DATABASE_URL, PHAB_SCIM_MARIADB_KIND (env|system|private).

_PHAB_SCIM_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"

_phab_scim_log() { printf 'mariadb: %s\n' "$*" >&2; }

_phab_scim_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        _phab_scim_log "need root for: $*"
        return 1
    fi
}

# apt-get install, with one `apt-get update` per shell.
_phab_scim_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        _phab_scim_log "apt-get not found; install $* by hand"
        return 1
    fi
    if [ -z "${_PHAB_SCIM_APT_UPDATED:-}" ]; then
        _phab_scim_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null || return 1
        _PHAB_SCIM_APT_UPDATED=1
    fi
    _phab_scim_log "installing $* with apt-get"
    _phab_scim_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" </dev/null
}

# Prints the path of the command-line client (mariadb or mysql).
_phab_scim_client() {
    local c
    for c in mariadb mysql; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

_phab_scim_find_mariadbd() {
    local c
    for c in mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

_phab_scim_find_install_db() {
    local c
    for c in mariadb-install-db mysql_install_db /usr/bin/mariadb-install-db /usr/bin/mysql_install_db; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

# Runs one statement over TCP: _phab_scim_query HOST PORT USER PASSWORD SQL.
# Prints the result, or the client's error message (which never contains the password) and
# returns non-zero. The password travels in MYSQL_PWD, never on a command line.
_phab_scim_query() {
    local client out rc=0
    client="$(_phab_scim_client)" || { echo "no mariadb/mysql client"; return 1; }
    if [ -n "$4" ]; then
        out="$(MYSQL_PWD="$4" "$client" --no-defaults --protocol=TCP --connect-timeout=3 \
            -h "$1" -P "$2" -u "$3" -N -B -e "$5" </dev/null 2>&1)" || rc=$?
    else
        out="$(env -u MYSQL_PWD "$client" --no-defaults --protocol=TCP --connect-timeout=3 \
            -h "$1" -P "$2" -u "$3" -N -B -e "$5" </dev/null 2>&1)" || rc=$?
    fi
    if [ "$rc" -eq 0 ]; then
        printf '%s\n' "${out##*$'\n'}"   # the last line: the result, after any client warning
    else
        printf '%s\n' "$out"
    fi
    return "$rc"
}

_phab_scim_urldecode() {
    local s="${1//+/ }"
    printf '%b' "${s//%/\\x}"
}

# Parses mysql://user[:password]@host[:port][/db][?params] into _PSU_USER _PSU_PASS _PSU_HOST _PSU_PORT.
_phab_scim_parse_url() {
    local re='^(mysql|mariadb)://([^:@/]*)(:([^@/]*))?@(\[[^]]+\]|[^:/?]+)(:([0-9]+))?(/[^?]*)?(\?.*)?$'
    [[ "$1" =~ $re ]] || return 1
    _PSU_USER="$(_phab_scim_urldecode "${BASH_REMATCH[2]}")"
    _PSU_PASS="$(_phab_scim_urldecode "${BASH_REMATCH[4]}")"
    _PSU_HOST="${BASH_REMATCH[5]}"
    _PSU_HOST="${_PSU_HOST#[}"
    _PSU_HOST="${_PSU_HOST%]}"
    _PSU_PORT="${BASH_REMATCH[7]:-3306}"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
_phab_scim_port_in_use() {
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null
    else
        (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null
    fi
}

_phab_scim_state_dir() {
    local base="${PHAB_SCIM_STATE_DIR:-$_PHAB_SCIM_REPO_ROOT/.demo}"
    case "$base" in
        /*) ;;
        *) base="$PWD/$base" ;;
    esac
    printf '%s/mariadb' "$base"
}

# Unix sockets are limited to ~107 bytes; fall back to a short path under /tmp for deep checkouts.
_phab_scim_socket_path() {
    local dir="$1" sock="$1/mariadbd.sock"
    if [ "${#sock}" -gt 100 ]; then
        sock="${TMPDIR:-/tmp}/phab-scim-mariadb-$(printf '%s' "$dir" | cksum | cut -d' ' -f1).sock"
    fi
    printf '%s' "$sock"
}

# Prints the pid of the private server in DIR if it is running (pid file + command line check).
_phab_scim_private_pid() {
    local dir="$1" pid
    [ -r "$dir/mariadbd.pid" ] || return 1
    pid="$(cat "$dir/mariadbd.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--datadir=$dir/data" || return 1
    fi
    printf '%s' "$pid"
}

_phab_scim_use() {
    # _phab_scim_use KIND URL MESSAGE
    export PHAB_SCIM_MARIADB_KIND="$1"
    export PHAB_SCIM_TEST_DATABASE_URL="$2"
    _phab_scim_log "$3"
}

_phab_scim_start_private() {
    local dir rc=0
    dir="$(_phab_scim_state_dir)"
    mkdir -p "$dir" || return 1

    # Serialise concurrent callers (two scripts started at once) on this state directory.
    # _PHAB_SCIM_LOCK_FD is closed in the server's process so that it does not hold the lock.
    _PHAB_SCIM_LOCK_FD=""
    if command -v flock >/dev/null 2>&1; then
        exec {_PHAB_SCIM_LOCK_FD}>"$dir/lock"
        if ! flock -w 180 "$_PHAB_SCIM_LOCK_FD"; then
            _phab_scim_log "timed out waiting for the lock on $dir/lock"
            exec {_PHAB_SCIM_LOCK_FD}>&-
            _PHAB_SCIM_LOCK_FD=""
            return 1
        fi
    fi
    _phab_scim_start_private_locked "$dir" || rc=$?
    if [ -n "$_PHAB_SCIM_LOCK_FD" ]; then
        exec {_PHAB_SCIM_LOCK_FD}>&-
        _PHAB_SCIM_LOCK_FD=""
    fi
    return "$rc"
}

_phab_scim_start_private_locked() {
    local dir="$1" sock port pid mariadbd install_db version timeout waited
    local -a opts
    sock="$(_phab_scim_socket_path "$dir")"
    local shown="${dir#"$_PHAB_SCIM_REPO_ROOT"/}"

    # Already running (started by an earlier call): reuse it.
    if pid="$(_phab_scim_private_pid "$dir")"; then
        port="$(cat "$dir/port" 2>/dev/null || true)"
        if [[ "$port" =~ ^[0-9]+$ ]]; then
            timeout="${PHAB_SCIM_MARIADB_START_TIMEOUT:-60}"
            for ((waited = 0; waited < timeout; waited++)); do
                if version="$(_phab_scim_query 127.0.0.1 "$port" root "" 'SELECT VERSION()')"; then
                    _phab_scim_use private "mysql://root@127.0.0.1:$port" \
                        "reusing private server $version on 127.0.0.1:$port (pid $pid, $shown)"
                    return 0
                fi
                kill -0 "$pid" 2>/dev/null || break
                sleep 1
            done
        fi
        _phab_scim_log "private server pid $pid does not answer; see $dir/mariadbd.log"
        return 1
    fi

    if ! mariadbd="$(_phab_scim_find_mariadbd)" || ! install_db="$(_phab_scim_find_install_db)" \
        || ! _phab_scim_client >/dev/null; then
        _phab_scim_apt_install mariadb-server mariadb-client || return 1
        mariadbd="$(_phab_scim_find_mariadbd)" || { _phab_scim_log "mariadbd not found after install"; return 1; }
        install_db="$(_phab_scim_find_install_db)" || { _phab_scim_log "mariadb-install-db not found"; return 1; }
    fi

    local -a user_opt=()
    if [ "$(id -u)" -eq 0 ]; then
        user_opt=(--user=root)
    fi

    if [ ! -d "$dir/data/mysql" ]; then
        rm -rf "$dir/data"
        if ! "$install_db" --no-defaults --datadir="$dir/data" "${user_opt[@]}" \
            --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
            >"$dir/install-db.log" 2>&1 </dev/null; then
            _phab_scim_log "mariadb-install-db failed; last lines of $dir/install-db.log:"
            tail -n 20 "$dir/install-db.log" >&2
            rm -rf "$dir/data"
            return 1
        fi
    fi

    port=3306
    while _phab_scim_port_in_use "$port"; do
        if [ "$port" -eq 3306 ]; then port=3307; else port=$((port + 1)); fi
        if [ "$port" -gt 3400 ]; then
            _phab_scim_log "no free port in 3306-3400"
            return 1
        fi
    done

    opts=(
        --no-defaults
        --datadir="$dir/data"
        --socket="$sock"
        --port="$port"
        --bind-address=127.0.0.1
        --pid-file="$dir/mariadbd.pid"
        --log-error="$dir/mariadbd.log"
        "${user_opt[@]}"
        --skip-name-resolve
        --character-set-server=utf8mb4
        --collation-server=utf8mb4_general_ci
        --max-connections=500
        --innodb-flush-log-at-trx-commit=2
    )
    rm -f "$dir/mariadbd.pid"
    printf '%s\n' "$port" >"$dir/port"
    (
        # Close every inherited descriptor above stderr (the lock, a CI runner's pipes), so the
        # server neither holds the lock nor keeps a caller's output pipe open.
        for fd in /proc/"$BASHPID"/fd/*; do
            fd="${fd##*/}"
            if [[ "$fd" =~ ^[0-9]+$ ]] && [ "$fd" -gt 2 ]; then
                eval "exec $fd>&-" 2>/dev/null || true
            fi
        done
        if [ -n "${_PHAB_SCIM_LOCK_FD:-}" ]; then exec {_PHAB_SCIM_LOCK_FD}>&- 2>/dev/null || true; fi
        if command -v setsid >/dev/null 2>&1; then
            exec setsid "$mariadbd" "${opts[@]}" </dev/null >>"$dir/mariadbd.log" 2>&1
        fi
        exec nohup "$mariadbd" "${opts[@]}" </dev/null >>"$dir/mariadbd.log" 2>&1
    ) &
    local bg=$!
    disown "$bg" 2>/dev/null || true

    timeout="${PHAB_SCIM_MARIADB_START_TIMEOUT:-60}"
    for ((waited = 0; waited < timeout; waited++)); do
        if version="$(_phab_scim_query 127.0.0.1 "$port" root "" 'SELECT VERSION()')"; then
            pid="$(_phab_scim_private_pid "$dir" || echo "$bg")"
            _phab_scim_use private "mysql://root@127.0.0.1:$port" \
                "started private server $version on 127.0.0.1:$port (pid $pid, $shown)"
            return 0
        fi
        if ! kill -0 "$bg" 2>/dev/null && ! _phab_scim_private_pid "$dir" >/dev/null; then
            break
        fi
        sleep 1
    done
    if kill -0 "$bg" 2>/dev/null; then
        _phab_scim_log "private server did not answer on 127.0.0.1:$port within ${timeout}s (pid $bg still running); last lines of $dir/mariadbd.log:"
    else
        _phab_scim_log "private server exited; last lines of $dir/mariadbd.log:"
    fi
    tail -n 20 "$dir/mariadbd.log" >&2
    return 1
}

ensure_mariadb() {
    local version shown
    if ! _phab_scim_client >/dev/null; then
        _phab_scim_apt_install mariadb-client || return 1
    fi

    if [ "${PHAB_SCIM_FORCE_PRIVATE_MARIADB:-0}" != 1 ]; then
        if [ -n "${PHAB_SCIM_TEST_DATABASE_URL:-}" ]; then
            if _phab_scim_parse_url "$PHAB_SCIM_TEST_DATABASE_URL"; then
                shown="$_PSU_USER@$_PSU_HOST:$_PSU_PORT"
                if version="$(_phab_scim_query "$_PSU_HOST" "$_PSU_PORT" "$_PSU_USER" "$_PSU_PASS" 'SELECT VERSION()')"; then
                    _phab_scim_use env "$PHAB_SCIM_TEST_DATABASE_URL" \
                        "using PHAB_SCIM_TEST_DATABASE_URL ($shown, $version)"
                    return 0
                fi
                _phab_scim_log "PHAB_SCIM_TEST_DATABASE_URL ($shown) does not answer: $(printf '%s' "$version" | head -n 1)"
            else
                _phab_scim_log "PHAB_SCIM_TEST_DATABASE_URL is not mysql://user[:password]@host[:port]; ignoring it"
            fi
        fi
        # A private server that an earlier call started on port 3306 is reused as such below.
        if version="$(_phab_scim_query 127.0.0.1 3306 root "" 'SELECT VERSION()')" \
            && ! { _phab_scim_private_pid "$(_phab_scim_state_dir)" >/dev/null \
                && [ "$(cat "$(_phab_scim_state_dir)/port" 2>/dev/null)" = 3306 ]; }; then
            _phab_scim_use system "mysql://root@127.0.0.1:3306" \
                "using the server on 127.0.0.1:3306 ($version)"
            return 0
        fi
    fi

    _phab_scim_start_private
}

# Stops the private server in the state directory (only that one: pid file + datadir check).
stop_private_mariadb() {
    local dir pid i
    dir="$(_phab_scim_state_dir)"
    if ! pid="$(_phab_scim_private_pid "$dir")"; then
        _phab_scim_log "no private server running in $dir"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || { _phab_scim_log "stopped private server (pid $pid)"; return 0; }
        sleep 1
    done
    _phab_scim_log "private server pid $pid still running after 60s"
    return 1
}

# SIGSTOP / SIGCONT to the private server in the state directory (only that one: pid file +
# datadir check), for the hung-database rounds of the fault tests.
_phab_scim_signal_private() {
    local pid
    if ! pid="$(_phab_scim_private_pid "$(_phab_scim_state_dir)")"; then
        _phab_scim_log "no private server running in $(_phab_scim_state_dir)"
        return 1
    fi
    kill "-$1" "$pid"
}
pause_private_mariadb() { _phab_scim_signal_private STOP; }
resume_private_mariadb() { _phab_scim_signal_private CONT; }
