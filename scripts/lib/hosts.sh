# shellcheck shell=bash
# Sourced by scripts/test and the host tests under tests/php/: the PHP packages the hosts need, and
# the host checkouts themselves (Phorge and the final Phabricator), unpacked from the pinned
# archives in ../shared/hosts (next to the repository; see its README.md). No host code is ever
# part of this repository: the checkouts live in the gitignored .hosts/.
#
#   source scripts/lib/hosts.sh
#   ensure_host_packages      # Debian's php-cli php-mysql ... php-ldap (and curl), when missing
#   ensure_hosts              # 0: hosts ready; 2: no host archives here (one line printed,
#                             #    the caller skips its host steps); 1: error
#   for host in $PHAB_SCIM_HOSTS; do
#       root=$(host_root "$host")       # absolute path of its checkout (PHABRICATOR_ROOT)
#       label=$(host_label "$host")     # "Phorge", "final Phabricator"
#   done
#   host_mysql_env            # PHAB_SCIM_TEST_MYSQL_HOST/PORT/USER/PASS from
#                             # PHAB_SCIM_TEST_DATABASE_URL (scripts/lib/mariadb.sh)
#   hosts_available           # 0 when ensure_hosts would find hosts (checks only)
#
# Storage namespaces, for a test running against the checkout in PHABRICATOR_ROOT:
#   env=$(host_namespace_new NS)   # a ready namespace NS with phabricator-ext loaded; prints
#                                  # the PHABRICATOR_ENV that selects it (a config file in the
#                                  # checkout's conf/custom/)
#   host_namespace_drop NS         # drops its databases and config file
#   host_namespace_clone SRC DST   # copies namespace SRC (tables and rows) into DST
# `bin/storage upgrade` takes up to half a minute per namespace on a busy 2-core machine, a copy
# about half that. Under scripts/host-tests (which exports PHAB_SCIM_HOSTS_RUN),
# host_namespace_new upgrades one template namespace per host per run and copies it, which is
# faster and starts every test from the same rows; the templates are dropped when
# scripts/host-tests ends. Run alone, it upgrades NS itself.
#
# The host's own workers, in the namespace PHABRICATOR_ENV selects:
#   host_run_workers LOG           runs every queued task once with `bin/worker execute`
#                                  (output appended to LOG); then
#   php tests/php/downstream.php tasks MARK   lists the tasks since MARK (`task-mark`) and
#                                  fails when any failed (see that file)
# A namespace's config reads PHAB_SCIM_TEST_MYSQL_* (host_mysql_env) and, for a test that
# serves the host, PHAB_SCIM_TEST_BASE_URI (default http://127.0.0.1/) when the host runs.
#
# Order in ensure_hosts:
#   1. PHABRICATOR_ROOT, when set: that checkout only (named phorge or phabricator after its core
#      library), as tests/php/integration.sh has always used it;
#   2. the archives in PHAB_SCIM_HOSTS_SOURCE, else ../shared/hosts next to the repository, else
#      next to the main checkout when this is a git worktree of it: unpacked with their `unpack`
#      script into ${PHAB_SCIM_HOSTS_DIR:-<repo>/.hosts}, once. A later call reuses that
#      directory while it was unpacked from the same archives (names and SHA-256 in
#      .hosts/pinned), and unpacks again when they changed;
#   3. neither: prints "hosts: ... skipped" and returns 2.
#
# Exported for callers:
#   PHAB_SCIM_HOSTS                 the host names to run, in order: "phorge phabricator", or the
#                                   one name of PHABRICATOR_ROOT's checkout
#   PHAB_SCIM_HOST_PHORGE           Phorge's checkout (its arcanist/ is a sibling), when present
#   PHAB_SCIM_HOST_PHABRICATOR      the final Phabricator's checkout, when present
#
# None of these names a phab-scim setting, so the service (which reads only PHAB_SCIM_* names of
# its settings, src/config.rs) ignores them.

_PHAB_SCIM_HOSTS_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"

# The Debian packages both hosts need (../shared/hosts/README.md); php-ldap for an LDAP provider;
# curl, the host tests' HTTP client; slapd and ldap-utils for the LDAP login test's private
# directory (tests/php/ldap-login.sh runs its own slapd on loopback; the package's own is told
# not to configure itself, below).
PHAB_SCIM_HOST_PACKAGES=(php-cli php-mysql php-curl php-mbstring php-gd php-zip php-xml php-intl php-ldap curl slapd ldap-utils)

_phab_scim_hosts_log() { printf 'hosts: %s\n' "$*" >&2; }

_phab_scim_hosts_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        _phab_scim_hosts_log "need root for: $*"
        return 1
    fi
}

# ensure_host_packages: installs whichever of PHAB_SCIM_HOST_PACKAGES is not installed. Runs
# `apt-get update` only when apt has no candidate for one of them (empty or stale lists). Waits
# for the dpkg lock, since other package installs may be running on the same machine.
ensure_host_packages() {
    local missing=() pkg
    for pkg in "${PHAB_SCIM_HOST_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        _phab_scim_hosts_log "apt-get not found; install ${missing[*]} by hand"
        return 1
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=600)
    for pkg in "${missing[@]}"; do
        if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]'; then
            _phab_scim_hosts_log "apt-get update (no candidate for $pkg)"
            _phab_scim_hosts_as_root "${apt[@]}" update </dev/null >/dev/null || return 1
            break
        fi
    done
    # slapd's postinst would otherwise build a directory of its own and start a server.
    if command -v debconf-set-selections >/dev/null 2>&1; then
        echo 'slapd slapd/no_configuration boolean true' \
            | _phab_scim_hosts_as_root debconf-set-selections || return 1
    fi
    _phab_scim_hosts_log "installing ${missing[*]}"
    _phab_scim_hosts_as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}" \
        </dev/null >/dev/null
}

# Prints the directory holding the host archives and `unpack`, or nothing.
_phab_scim_hosts_source() {
    local candidates=()
    if [ -n "${PHAB_SCIM_HOSTS_SOURCE:-}" ]; then
        candidates+=("$PHAB_SCIM_HOSTS_SOURCE")
    fi
    candidates+=("$_PHAB_SCIM_HOSTS_REPO/../shared/hosts")
    # A git worktree lives elsewhere; its main checkout is the repository next to ../shared.
    local common
    if common=$(git -C "$_PHAB_SCIM_HOSTS_REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null); then
        candidates+=("$(dirname "$common")/../shared/hosts")
    fi
    local dir
    for dir in "${candidates[@]}"; do
        if [ -x "$dir/unpack" ]; then
            (cd "$dir" && pwd -P)
            return 0
        fi
    done
}

# host_root NAME: the checkout of host NAME (phorge or phabricator), from ensure_hosts.
host_root() {
    case "$1" in
        phorge) printf '%s\n' "${PHAB_SCIM_HOST_PHORGE:?ensure_hosts did not find Phorge}" ;;
        phabricator) printf '%s\n' "${PHAB_SCIM_HOST_PHABRICATOR:?ensure_hosts did not find Phabricator}" ;;
        *) _phab_scim_hosts_log "unknown host '$1'"; return 1 ;;
    esac
}

# host_label NAME: how section headers name host NAME.
host_label() {
    case "$1" in
        phorge) echo "Phorge" ;;
        phabricator) echo "final Phabricator" ;;
        *) echo "$1" ;;
    esac
}

# Prints phorge or phabricator for the checkout ROOT, after the core library's name.
_phab_scim_host_kind() {
    if grep -q "phutil_register_library('phorge'" "$1/src/__phutil_library_init__.php" 2>/dev/null; then
        echo phorge
    else
        echo phabricator
    fi
}

ensure_hosts() {
    unset PHAB_SCIM_HOST_PHORGE PHAB_SCIM_HOST_PHABRICATOR
    if [ -n "${PHABRICATOR_ROOT:-}" ]; then
        local root kind
        root=$(cd "$PHABRICATOR_ROOT" 2>/dev/null && pwd -P) || {
            _phab_scim_hosts_log "PHABRICATOR_ROOT=$PHABRICATOR_ROOT does not exist"
            return 1
        }
        kind=$(_phab_scim_host_kind "$root")
        export PHAB_SCIM_HOSTS="$kind"
        if [ "$kind" = phorge ]; then
            export PHAB_SCIM_HOST_PHORGE="$root"
        else
            export PHAB_SCIM_HOST_PHABRICATOR="$root"
        fi
        _phab_scim_hosts_log "PHABRICATOR_ROOT is set: only $(host_label "$kind") at $root"
        return 0
    fi

    local source
    source=$(_phab_scim_hosts_source)
    if [ -z "$source" ]; then
        export PHAB_SCIM_HOSTS=""
        echo "hosts: ../shared/hosts not found (and PHABRICATOR_ROOT not set); host steps skipped"
        return 2
    fi

    local dest=${PHAB_SCIM_HOSTS_DIR:-$_PHAB_SCIM_HOSTS_REPO/.hosts}
    mkdir -p "$dest" || return 1
    dest=$(cd "$dest" && pwd -P)
    # What the checkouts were unpacked from: the archive names and contents.
    local pinned
    pinned=$(cd "$source" && sha256sum -- *.tar.gz) || return 1
    (
        # One unpacker at a time per directory (scripts run side by side in one checkout).
        flock 9
        if [ -f "$dest/pinned" ] && [ "$(cat "$dest/pinned")" = "$pinned" ] \
            && [ -x "$dest/phorge/phorge/bin/storage" ] \
            && [ -x "$dest/phabricator/phabricator/bin/storage" ]; then
            exit 0
        fi
        _phab_scim_hosts_log "unpacking $source into $dest"
        rm -rf "$dest/phorge" "$dest/phabricator" "$dest/pinned"
        "$source/unpack" "$dest" >/dev/null || exit 1
        printf '%s\n' "$pinned" >"$dest/pinned"
    ) 9>"$dest/.lock" || {
        _phab_scim_hosts_log "unpacking the hosts failed"
        return 1
    }
    export PHAB_SCIM_HOST_PHORGE="$dest/phorge/phorge"
    export PHAB_SCIM_HOST_PHABRICATOR="$dest/phabricator/phabricator"
    export PHAB_SCIM_HOSTS="phorge phabricator"
    return 0
}

# hosts_available: whether ensure_hosts has hosts to run (PHABRICATOR_ROOT or the archives),
# without unpacking anything.
hosts_available() {
    [ -n "${PHABRICATOR_ROOT:-}" ] || [ -n "$(_phab_scim_hosts_source)" ]
}

# host_mysql_env: exports the server of PHAB_SCIM_TEST_DATABASE_URL
# (mysql://user[:password]@host[:port][/...]) as PHAB_SCIM_TEST_MYSQL_HOST, _PORT, _USER and
# _PASS, which the host tests under tests/php/ read (a host's own config takes them separately).
host_mysql_env() {
    local url=${PHAB_SCIM_TEST_DATABASE_URL:-mysql://root@127.0.0.1:3306}
    local rest=${url#*://}
    rest=${rest%%/*}
    local creds=root hostport=$rest
    if [[ "$rest" == *@* ]]; then
        creds=${rest%@*}
        hostport=${rest##*@}
    fi
    local user=${creds%%:*} pass=
    if [[ "$creds" == *:* ]]; then
        pass=${creds#*:}
    fi
    local host=${hostport%:*} port=3306
    if [[ "$hostport" == *:* ]]; then
        port=${hostport##*:}
    fi
    # The user and password may be percent-encoded in the URL.
    export PHAB_SCIM_TEST_MYSQL_HOST="$host"
    export PHAB_SCIM_TEST_MYSQL_PORT="$port"
    PHAB_SCIM_TEST_MYSQL_USER=$(printf '%b' "${user//%/\\x}")
    PHAB_SCIM_TEST_MYSQL_PASS=$(printf '%b' "${pass//%/\\x}")
    export PHAB_SCIM_TEST_MYSQL_USER PHAB_SCIM_TEST_MYSQL_PASS
}

# _phab_scim_sql QUERY: runs QUERY on the test server (host_mysql_env), prints rows tab-separated.
_phab_scim_sql() {
    php -r '
        $c = mysqli_connect(getenv("PHAB_SCIM_TEST_MYSQL_HOST"), getenv("PHAB_SCIM_TEST_MYSQL_USER"),
            getenv("PHAB_SCIM_TEST_MYSQL_PASS"), "", (int)getenv("PHAB_SCIM_TEST_MYSQL_PORT"));
        foreach (explode(";\n", $argv[1]) as $q) {
            if (trim($q) === "") { continue; }
            $r = mysqli_query($c, $q);
            if ($r instanceof mysqli_result) {
                while ($row = mysqli_fetch_row($r)) { echo implode("\t", $row), "\n"; }
            }
        }' "$1"
}

# host_namespace_clone SRC DST: creates namespace DST as a copy of SRC: every database
# SRC_<name> (with its default charset and collation), every table (CREATE TABLE ... LIKE keeps
# columns, keys and engine), every row.
host_namespace_clone() {
    local src=$1 dst=$2
    host_mysql_env_default
    local script
    script=$(_phab_scim_sql "
        SELECT CONCAT('CREATE DATABASE \`', '$dst', SUBSTRING(SCHEMA_NAME, LENGTH('$src') + 1),
            '\` CHARACTER SET ', DEFAULT_CHARACTER_SET_NAME, ' COLLATE ', DEFAULT_COLLATION_NAME, ';')
        FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '${src//_/\\_}\\_%';
        SELECT CONCAT('CREATE TABLE \`', '$dst', SUBSTRING(TABLE_SCHEMA, LENGTH('$src') + 1), '\`.\`',
            TABLE_NAME, '\` LIKE \`', TABLE_SCHEMA, '\`.\`', TABLE_NAME, '\`;\nINSERT INTO \`',
            '$dst', SUBSTRING(TABLE_SCHEMA, LENGTH('$src') + 1), '\`.\`', TABLE_NAME,
            '\` SELECT * FROM \`', TABLE_SCHEMA, '\`.\`', TABLE_NAME, '\`;')
        FROM information_schema.TABLES
        WHERE TABLE_SCHEMA LIKE '${src//_/\\_}\\_%' AND TABLE_TYPE = 'BASE TABLE'") || return 1
    [ -n "$script" ] || { _phab_scim_hosts_log "namespace $src has no databases"; return 1; }
    _phab_scim_sql "SET SESSION foreign_key_checks = 0;
$script"
}

# host_mysql_env_default: host_mysql_env, unless a caller set PHAB_SCIM_TEST_MYSQL_HOST already.
host_mysql_env_default() {
    [ -n "${PHAB_SCIM_TEST_MYSQL_HOST:-}" ] || host_mysql_env
}

# _phab_scim_conf_write NS: the config file selecting namespace NS in PHABRICATOR_ROOT; prints
# its PHABRICATOR_ENV.
_phab_scim_conf_write() {
    local ns=$1 root
    root=$(cd "${PHABRICATOR_ROOT:?PHABRICATOR_ROOT names no host checkout}" && pwd -P) || return 1
    mkdir -p "$root/conf/custom" || return 1
    cat >"$root/conf/custom/phabscim-$ns.conf.php" <<PHP
<?php
// Written by phab-scim scripts/lib/hosts.sh (host_namespace_new); host_namespace_drop removes it.
return array(
  'mysql.host' => getenv('PHAB_SCIM_TEST_MYSQL_HOST') ?: '127.0.0.1',
  'mysql.port' => getenv('PHAB_SCIM_TEST_MYSQL_PORT') ?: '3306',
  'mysql.user' => getenv('PHAB_SCIM_TEST_MYSQL_USER') ?: 'root',
  'mysql.pass' => (string)getenv('PHAB_SCIM_TEST_MYSQL_PASS'),
  'storage.default-namespace' => '$ns',
  'load-libraries' => array('$_PHAB_SCIM_HOSTS_REPO/phabricator-ext'),
  'phabricator.base-uri' => getenv('PHAB_SCIM_TEST_BASE_URI') ?: 'http://127.0.0.1/',
  'security.require-https' => false,
  'phabricator.show-prototypes' => true,
);
PHP
    echo "custom/phabscim-$ns"
}

# _phab_scim_upgrade NS: bin/storage upgrade of namespace NS in PHABRICATOR_ROOT (its config
# written first); the log goes to stderr only when it fails.
_phab_scim_upgrade() {
    local ns=$1 env log
    env=$(_phab_scim_conf_write "$ns") || return 1
    log=$(PHABRICATOR_ENV="$env" "$PHABRICATOR_ROOT/bin/storage" upgrade --force --namespace "$ns" 2>&1) || {
        printf '%s\n' "$log" | tail -n 30 >&2
        _phab_scim_hosts_log "bin/storage upgrade --namespace $ns failed"
        return 1
    }
}

host_namespace_new() {
    local ns=$1 kind
    host_mysql_env_default
    kind=$(_phab_scim_host_kind "$PHABRICATOR_ROOT")
    if [ -n "${PHAB_SCIM_HOSTS_RUN:-}" ] && [ -d "$PHAB_SCIM_HOSTS_RUN" ]; then
        local template
        template=$({
            flock 9
            file="$PHAB_SCIM_HOSTS_RUN/template-$kind"
            if [ ! -s "$file" ]; then
                name="phabscim_tpl_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
                echo "$kind $name" >>"$PHAB_SCIM_HOSTS_RUN/namespaces"
                _phab_scim_upgrade "$name" >&2 || exit 1
                echo "$name" >"$file"
            fi
            cat "$file"
        } 9>"$PHAB_SCIM_HOSTS_RUN/.lock") || return 1
        host_namespace_clone "$template" "$ns" || return 1
        _phab_scim_conf_write "$ns"
    else
        _phab_scim_upgrade "$ns" || return 1
        echo "custom/phabscim-$ns"
    fi
}

host_namespace_drop() {
    local ns=$1 root db
    host_mysql_env_default
    root=$(cd "${PHABRICATOR_ROOT:?PHABRICATOR_ROOT names no host checkout}" && pwd -P) || return 1
    for db in $(_phab_scim_sql "SHOW DATABASES LIKE '${ns//_/\\_}\\_%'"); do
        _phab_scim_sql "DROP DATABASE \`$db\`"
    done
    rm -f "$root/conf/custom/phabscim-$ns.conf.php"
    rmdir "$root/conf/custom" 2>/dev/null || true
}

# hosts_run_begin: starts a run that shares one template namespace per host between the tests
# (host_namespace_new); exports PHAB_SCIM_HOSTS_RUN, a directory under .hosts/.
hosts_run_begin() {
    local base=${PHAB_SCIM_HOSTS_DIR:-$_PHAB_SCIM_HOSTS_REPO/.hosts}
    mkdir -p "$base" || return 1
    PHAB_SCIM_HOSTS_RUN=$(mktemp -d "$base/run.XXXXXX") || return 1
    export PHAB_SCIM_HOSTS_RUN
    : >"$PHAB_SCIM_HOSTS_RUN/namespaces"
}

# hosts_run_end: drops the template namespaces of the run and its directory.
hosts_run_end() {
    [ -n "${PHAB_SCIM_HOSTS_RUN:-}" ] && [ -d "$PHAB_SCIM_HOSTS_RUN" ] || return 0
    local kind ns root
    while read -r kind ns; do
        [ -n "$ns" ] || continue
        case "$kind" in
            phorge) root=${PHAB_SCIM_HOST_PHORGE:-} ;;
            *) root=${PHAB_SCIM_HOST_PHABRICATOR:-} ;;
        esac
        [ -n "$root" ] || continue
        PHABRICATOR_ROOT="$root" host_namespace_drop "$ns"
    done <"$PHAB_SCIM_HOSTS_RUN/namespaces"
    rm -rf "$PHAB_SCIM_HOSTS_RUN"
    unset PHAB_SCIM_HOSTS_RUN
}

# host_run_workers LOG: the host's own workers run the queued tasks of the namespace that
# PHABRICATOR_ENV selects in PHABRICATOR_ROOT, with `bin/worker execute --id ...` on the active
# tasks that never failed, oldest first. It stops at the first task that fails (leaving it active
# with a failure count), so it runs again on the rest until none is left: every task runs once,
# and tasks the workers queue themselves run too. (`--max-failure-count 0` would not do: the
# workflow applies the failure counts only with a minimum.) A round that changes nothing (a task
# the host cannot even load) ends the loop. Never fails itself: `downstream.php tasks` judges.
host_run_workers() {
    local log=$1 before after ids args id
    local downstream="$_PHAB_SCIM_HOSTS_REPO/tests/php/downstream.php"
    for _ in $(seq 1 50); do
        ids=$(php "$downstream" runnable-ids) || return 0
        [ -n "$ids" ] || return 0
        before=$(php "$downstream" worker-state) || return 0
        args=()
        for id in $ids; do args+=(--id "$id"); done
        "$PHABRICATOR_ROOT/bin/worker" execute "${args[@]}" >>"$log" 2>&1 || true
        after=$(php "$downstream" worker-state) || return 0
        [ "$after" != "$before" ] || return 0
    done
}
