# Shared by the tests under tests/php/ that run against a Phorge (or
# Phabricator) checkout: a scratch storage namespace with its own config
# file, helpers to query MySQL and find free ports, the phab-scim service,
# and a cleanup that undoes all of it (the namespace, the config file, the
# temporary directory, every background process it started), also on
# failure. Source it, then call host_init.
#
# Environment: PHABRICATOR_ROOT (required), PHAB_SCIM_TEST_MYSQL_HOST/PORT/
# USER/PASS (default 127.0.0.1:3306 root, no password).
#
# After host_init: repo, root, ext, ns, tmp, conf_name, conf_file, mysql_*;
# PHABRICATOR_ENV selects the namespace's config file.

step() { printf '\n== [%3d s] %s\n' "$SECONDS" "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# shellcheck source=tests/php/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

helper() { php "$repo/tests/php/phorge_helper.php" "$@"; }

# host_init <namespace prefix>: checks the checkout, picks a namespace and a
# temporary directory, and installs the cleanup trap.
host_init() {
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  root=$(cd "$PHABRICATOR_ROOT" && pwd)
  export PHABRICATOR_ROOT="$root"
  ext="$repo/phabricator-ext"

  if [ ! -f "$root/scripts/init/init-script.php" ] || [ ! -x "$root/bin/storage" ]; then
    echo "PHABRICATOR_ROOT=$root is not a Phorge or Phabricator checkout" >&2
    exit 1
  fi

  mysql_host=${PHAB_SCIM_TEST_MYSQL_HOST:-127.0.0.1}
  mysql_port=${PHAB_SCIM_TEST_MYSQL_PORT:-3306}
  mysql_user=${PHAB_SCIM_TEST_MYSQL_USER:-root}
  mysql_pass=${PHAB_SCIM_TEST_MYSQL_PASS:-}
  export mysql_host mysql_port mysql_user mysql_pass

  ns="${1}_$(php -r 'echo bin2hex(random_bytes(4));')"
  tmp=$(mktemp -d)
  conf_name="custom/phabscim-$ns"
  conf_file="$root/conf/$conf_name.conf.php"
  failures=0
  bg_pids=()

  trap host_cleanup EXIT
  trap 'exit 130' INT TERM
}

# spawn <log> <command...>: runs the command in the background with its
# output in <log>; $! is the command itself (exec: a backgrounded subshell
# would not pass the kill on), and host_cleanup ends it.
spawn() {
  local log=$1
  shift
  (exec "$@") >"$log" 2>&1 &
  bg_pids+=("$!")
}

host_cleanup() {
  set +e
  local i pid
  for ((i = ${#bg_pids[@]} - 1; i >= 0; i--)); do
    pid=${bg_pids[$i]}
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ -f "$conf_file" ]; then
    "$root/bin/storage" destroy --force --namespace "$ns" >"$tmp/destroy.log" 2>&1
  fi
  local db
  for db in $(sql "SHOW DATABASES LIKE '${ns}\\_%'"); do
    sql "DROP DATABASE \`$db\`"
  done
  rm -f "$conf_file"
  rmdir "$root/conf/custom" 2>/dev/null
  local left
  left=$(sql "SHOW DATABASES LIKE '${ns}\\_%'" | wc -l)
  echo "cleanup: dropped namespace $ns ($left database(s) left)"
  rm -rf "$tmp"
}

# host_write_config <base URI>: the namespace's config file, selected by
# PHABRICATOR_ENV; checks that the host reads it and loads the library.
host_write_config() {
  local base=$1
  mkdir -p "$root/conf/custom"
  cat >"$conf_file" <<PHP
<?php
// Written by phab-scim tests/php/ (host_lib.sh); removed when the test ends.
return array(
  'mysql.host' => getenv('mysql_host') ?: '$mysql_host',
  'mysql.port' => '$mysql_port',
  'mysql.user' => '$mysql_user',
  'mysql.pass' => '$mysql_pass',
  'storage.default-namespace' => '$ns',
  'load-libraries' => array('$ext'),
  'phabricator.base-uri' => '$base/',
  'security.require-https' => false,
  'phabricator.show-prototypes' => true,
);
PHP
  export PHABRICATOR_ENV="$conf_name"

  local got_ns loaded
  read -r got_ns loaded < <(helper config)
  [ "$got_ns" = "$ns" ] || die "effective storage.default-namespace is '$got_ns', not '$ns' (does $root/conf/local/local.json override it?)"
  [ "$loaded" = "1" ] || die "the library was not loaded from $ext"
  ok "the host reads the test config and loads phabricator-scim"
}

# host_storage_upgrade [bin/storage upgrade options...]
host_storage_upgrade() {
  if ! "$root/bin/storage" upgrade --force "$@" --namespace "$ns" >"$tmp/upgrade.log" 2>&1; then
    tail -40 "$tmp/upgrade.log" >&2
    die "bin/storage upgrade failed"
  fi
  ok "storage upgraded ($(grep -c 'Applying patch' "$tmp/upgrade.log" || true) patches)"
}

# service_env [VAR=value...]: the env(1) arguments that run the phab-scim
# binary on this namespace. The service refuses unknown PHAB_SCIM_*
# variables, and the tests' own (PHAB_SCIM_BIN, PHAB_SCIM_KEEP, ...) share
# the prefix: they are unset. Sets the array service_cmd.
service_env() {
  local var
  service_cmd=(env)
  for var in $(compgen -e | grep '^PHAB_SCIM_' || true); do
    service_cmd+=(-u "$var")
  done
  service_cmd+=(
    PHAB_SCIM_DATABASE_URL="mysql://${mysql_user}${mysql_pass:+:$mysql_pass}@${mysql_host}:${mysql_port}"
    PHAB_SCIM_NAMESPACE="$ns"
    "$@"
    "$PHAB_SCIM_BIN")
}

# start_service <port> <log> [VAR=value...]: phab-scim serve on 127.0.0.1:<port>;
# waits for /healthz. Sets svc_pid.
start_service() {
  local port=$1 log=$2
  shift 2
  service_env PHAB_SCIM_LISTEN="127.0.0.1:$port" "$@"
  spawn "$log" "${service_cmd[@]}" serve
  svc_pid=$!
  local _
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && return 0
    kill -0 "$svc_pid" 2>/dev/null || break
    sleep 0.2
  done
  tail -20 "$log" >&2
  die "phab-scim serve did not answer /healthz"
}

# stop <pid>: ends a process spawn started, before the cleanup would.
stop() {
  kill "$1" 2>/dev/null && wait "$1" 2>/dev/null
  return 0
}

# host_serve <base> <session>: serves the host with `php -S` on <base>'s port,
# every request logged in with <session> (a web session key), or with the one
# a request's X-Test-Session header names ("none": logged out); waits until it
# answers. Sets web_pid.
host_serve() {
  local base=$1 session=$2
  cat >"$tmp/router.php" <<'PHP'
<?php
// Test-only router: logs every request in with the session named by the
// X-Test-Session header, or the default one.
$session = getenv('PHAB_SCIM_TEST_SESSION');
if (isset($_SERVER['HTTP_X_TEST_SESSION'])) {
  $session = $_SERVER['HTTP_X_TEST_SESSION'];
}
if ($session !== 'none' && !isset($_COOKIE['phsid'])) {
  $_COOKIE['phsid'] = $session;
}
return require getenv('PHABRICATOR_ROOT').'/webroot/index.php';
PHP
  spawn "$tmp/web.log" env PHAB_SCIM_TEST_SESSION="$session" \
    php -S "${base#http://}" -t "$root/webroot" "$tmp/router.php"
  web_pid=$!
  local _
  for _ in $(seq 50); do
    curl -s -o /dev/null "$base/" && return 0
    sleep 0.2
  done
}

# host_screenshot <base> <name> <path> [height]: scim-<name>.png of the page in
# $PHAB_SCIM_SCREENSHOT_DIR, 1280 wide, by headless chromium.
host_screenshot() {
  local base=$1 name=$2 path=$3 height=${4:-900}
  mkdir -p "$PHAB_SCIM_SCREENSHOT_DIR"
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$tmp/chromium" "--screen-info={1280x$height}" \
    --screenshot="$PHAB_SCIM_SCREENSHOT_DIR/scim-$name.png" \
    --window-size="1280,$height" "$base$path" >/dev/null 2>&1 \
    && ok "screenshot scim-$name.png" || fail "screenshot of $path"
}
