# shellcheck shell=bash
# Sourced by tests and scripts that need several MariaDB servers at once (partitioned
# `cluster.databases`: one master per partition): starts private `mariadbd` instances on
# 127.0.0.1, each with its own datadir, socket and port, root without a password, and stops and
# removes them. Never touches the shared server on 3306 nor the one scripts/lib/mariadb.sh keeps.
#
#   source scripts/lib/mariadbd.sh
#   mariadbd_start NAME...     # starts one server per NAME (letters, digits, _), waits until each
#                              # answers; returns non-zero (never exits) when one cannot start
#   mariadbd_url NAME          # prints mysql://root@127.0.0.1:PORT
#   mariadbd_port NAME         # prints PORT
#   mariadbd_urls NAME...      # prints the URLs, comma-separated (PHAB_SCIM_TEST_MASTER_URLS)
#   mariadbd_stop NAME         # SIGTERM, waits for the exit (a clean shutdown)
#   mariadbd_kill NAME         # SIGKILL: a crash; the datadir survives for mariadbd_start again
#   mariadbd_pause NAME / mariadbd_resume NAME     # SIGSTOP / SIGCONT: a hung server
#   mariadbd_remove_all        # stops every server of this state directory and deletes it
#
# A NAME started again after a stop or kill reuses its datadir and its port (crash recovery
# runs, prepared XA transactions survive), so a client's URL stays valid.
#
# Environment:
#   PHAB_SCIM_MARIADBD_DIR     state directory (default: a new directory under /tmp, exported
#                              by the first mariadbd_start so that child shells share it)
#   PHAB_SCIM_MARIADB_START_TIMEOUT   seconds to wait for a server (default 60)
# The first datadir is made with mariadb-install-db and copied for the others (a copy takes
# well under a second, an install several).

# The helpers (_phab_scim_query, _phab_scim_port_in_use, finding the binaries, apt-get).
# shellcheck source=scripts/lib/mariadb.sh
source "$(dirname "${BASH_SOURCE[0]}")/mariadb.sh"

_mariadbd_log() { printf 'mariadbd: %s\n' "$*" >&2; }

_mariadbd_base() {
    if [ -z "${PHAB_SCIM_MARIADBD_DIR:-}" ]; then
        PHAB_SCIM_MARIADBD_DIR="$(mktemp -d /tmp/phab-scim-mariadbd.XXXXXX)" || return 1
        export PHAB_SCIM_MARIADBD_DIR
    fi
    mkdir -p "$PHAB_SCIM_MARIADBD_DIR" && printf '%s' "$PHAB_SCIM_MARIADBD_DIR"
}

_mariadbd_dir() {
    local base
    [[ "$1" =~ ^[A-Za-z0-9_]+$ ]] || { _mariadbd_log "bad server name: $1"; return 1; }
    base="$(_mariadbd_base)" || return 1
    printf '%s/%s' "$base" "$1"
}

# The pid of server NAME when it runs (pid file, and a command line naming its datadir).
_mariadbd_pid() {
    local dir pid
    dir="$(_mariadbd_dir "$1")" || return 1
    [ -r "$dir/pid" ] || return 1
    pid="$(cat "$dir/pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--datadir=$dir/data" || return 1
    fi
    printf '%s' "$pid"
}

# A free port: the one NAME had, else the first free one from 13306 not taken by a sibling.
_mariadbd_pick_port() {
    local dir="$1" base port
    if [ -r "$dir/port" ]; then
        cat "$dir/port"
        return 0
    fi
    base="$(dirname "$dir")"
    for ((port = 13306; port < 13500; port++)); do
        if grep -qx "$port" "$base"/*/port 2>/dev/null || _phab_scim_port_in_use "$port"; then
            continue
        fi
        printf '%s' "$port"
        return 0
    done
    _mariadbd_log "no free port in 13306-13499"
    return 1
}

# A datadir for DIR: a copy of the template, made once per state directory.
_mariadbd_datadir() {
    local dir="$1" base install_db
    [ -d "$dir/data/mysql" ] && return 0
    base="$(dirname "$dir")"
    if [ ! -d "$base/.template/mysql" ]; then
        install_db="$(_phab_scim_find_install_db)" || {
            _phab_scim_apt_install mariadb-server mariadb-client || return 1
            install_db="$(_phab_scim_find_install_db)" || return 1
        }
        local -a user_opt=()
        [ "$(id -u)" -eq 0 ] && user_opt=(--user=root)
        rm -rf "$base/.template"
        if ! "$install_db" --no-defaults --datadir="$base/.template" "${user_opt[@]}" \
            --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
            >"$base/install-db.log" 2>&1 </dev/null; then
            _mariadbd_log "mariadb-install-db failed; last lines of $base/install-db.log:"
            tail -n 20 "$base/install-db.log" >&2
            rm -rf "$base/.template"
            return 1
        fi
    fi
    cp -a "$base/.template" "$dir/data"
}

_mariadbd_start_one() {
    local name="$1" dir port pid mariadbd timeout waited version
    dir="$(_mariadbd_dir "$name")" || return 1
    mkdir -p "$dir"
    if pid="$(_mariadbd_pid "$name")"; then
        _mariadbd_log "$name already runs (pid $pid, port $(cat "$dir/port"))"
        return 0
    fi
    mariadbd="$(_phab_scim_find_mariadbd)" || {
        _phab_scim_apt_install mariadb-server mariadb-client || return 1
        mariadbd="$(_phab_scim_find_mariadbd)" || return 1
    }
    _mariadbd_datadir "$dir" || return 1
    port="$(_mariadbd_pick_port "$dir")" || return 1
    printf '%s\n' "$port" >"$dir/port"
    local -a user_opt=()
    [ "$(id -u)" -eq 0 ] && user_opt=(--user=root)
    rm -f "$dir/pid"
    (
        # Inherited descriptors (a caller's pipes) closed: the server must not hold them open.
        for fd in /proc/"$BASHPID"/fd/*; do
            fd="${fd##*/}"
            if [[ "$fd" =~ ^[0-9]+$ ]] && [ "$fd" -gt 2 ]; then
                eval "exec $fd>&-" 2>/dev/null || true
            fi
        done
        exec setsid "$mariadbd" --no-defaults --datadir="$dir/data" \
            --socket="$(_phab_scim_socket_path "$dir")" --port="$port" --bind-address=127.0.0.1 \
            --pid-file="$dir/pid" --log-error="$dir/log" "${user_opt[@]}" --skip-name-resolve \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
            --max-connections=200 --innodb-buffer-pool-size=64M --skip-log-bin \
            </dev/null >>"$dir/log" 2>&1
    ) &
    local bg=$!
    disown "$bg" 2>/dev/null || true
    timeout="${PHAB_SCIM_MARIADB_START_TIMEOUT:-60}"
    for ((waited = 0; waited < timeout * 5; waited++)); do
        if version="$(_phab_scim_query 127.0.0.1 "$port" root "" 'SELECT VERSION()')"; then
            _mariadbd_log "$name: $version on 127.0.0.1:$port (pid $(_mariadbd_pid "$name" || echo "$bg"))"
            return 0
        fi
        if ! kill -0 "$bg" 2>/dev/null && ! _mariadbd_pid "$name" >/dev/null; then
            break
        fi
        sleep 0.2
    done
    _mariadbd_log "$name did not answer on 127.0.0.1:$port; last lines of $dir/log:"
    tail -n 20 "$dir/log" >&2
    return 1
}

mariadbd_start() {
    local name
    _mariadbd_base >/dev/null || return 1
    _phab_scim_client >/dev/null || _phab_scim_apt_install mariadb-client || return 1
    for name in "$@"; do
        _mariadbd_start_one "$name" || return 1
    done
}

mariadbd_port() {
    local dir
    dir="$(_mariadbd_dir "$1")" || return 1
    cat "$dir/port" 2>/dev/null
}

mariadbd_url() {
    local port
    port="$(mariadbd_port "$1")" || return 1
    printf 'mysql://root@127.0.0.1:%s\n' "$port"
}

mariadbd_urls() {
    local name sep="" out=""
    for name in "$@"; do
        out+="$sep$(mariadbd_url "$name")" || return 1
        sep=","
    done
    printf '%s\n' "$out"
}

# Sends SIG to server NAME; with WAIT, waits up to 60 s for its exit.
_mariadbd_signal() {
    local sig="$1" name="$2" wait="${3:-}" pid i
    if ! pid="$(_mariadbd_pid "$name")"; then
        _mariadbd_log "$name is not running"
        return 0
    fi
    kill "-$sig" "$pid" 2>/dev/null || return 0
    [ -n "$wait" ] || return 0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    _mariadbd_log "$name (pid $pid) still running after 60 s"
    return 1
}

mariadbd_stop() { _mariadbd_signal TERM "$1" wait; }
mariadbd_kill() { _mariadbd_signal KILL "$1" wait; }
mariadbd_pause() { _mariadbd_signal STOP "$1"; }
mariadbd_resume() { _mariadbd_signal CONT "$1"; }

mariadbd_remove_all() {
    local base dir
    [ -n "${PHAB_SCIM_MARIADBD_DIR:-}" ] && [ -d "$PHAB_SCIM_MARIADBD_DIR" ] || return 0
    base="$PHAB_SCIM_MARIADBD_DIR"
    for dir in "$base"/*/; do
        [ -d "$dir" ] || continue
        dir="${dir%/}"
        mariadbd_resume "${dir##*/}" 2>/dev/null || true
        mariadbd_stop "${dir##*/}" || mariadbd_kill "${dir##*/}" || true
    done
    rm -rf "$base"
    unset PHAB_SCIM_MARIADBD_DIR
}
