# Shared pieces of the tests that drive a real Phorge or Phabricator checkout
# (tests/php/differential.sh; tests/php/integration.sh has the same logic
# inline). Source it after setting PHABRICATOR_ROOT; it defines:
#
#   mysql_host mysql_port mysql_user mysql_pass   (exported, for PHP too)
#   sql QUERY               rows, tab-separated
#   free_port               a free TCP port on 127.0.0.1
#   host_conf NS NAME [BASE_URI]
#                           writes $PHABRICATOR_ROOT/conf/custom/NAME.conf.php
#                           selecting namespace NS and loading
#                           phabricator-ext; prints the PHABRICATOR_ENV value
#   drop_namespace NS       drops every NS_* database
#   clone_namespace FROM TO copies every FROM_* database into TO_* (schema and
#                           rows), much faster than a second storage upgrade
#   service_env             the env(1) arguments that unset this test's own
#                           PHAB_SCIM_* variables (the service refuses unknown
#                           ones)
#   start_service LOG NS PORT [VAR=VALUE...]
#                           starts `$PHAB_SCIM_BIN serve` on NS, waits for
#                           /healthz; sets started_pid

mysql_host=${PHAB_SCIM_TEST_MYSQL_HOST:-127.0.0.1}
mysql_port=${PHAB_SCIM_TEST_MYSQL_PORT:-3306}
mysql_user=${PHAB_SCIM_TEST_MYSQL_USER:-root}
mysql_pass=${PHAB_SCIM_TEST_MYSQL_PASS:-}
export mysql_host mysql_port mysql_user mysql_pass

# shellcheck source=tests/php/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

host_conf() {
  local ns=$1 name=$2 base=${3:-http://127.0.0.1/}
  local ext
  ext=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../phabricator-ext" && pwd)
  mkdir -p "$PHABRICATOR_ROOT/conf/custom"
  cat >"$PHABRICATOR_ROOT/conf/custom/$name.conf.php" <<PHP
<?php
// Written by a phab-scim test (tests/php/); removed when it ends.
return array(
  'mysql.host' => '$mysql_host',
  'mysql.port' => '$mysql_port',
  'mysql.user' => '$mysql_user',
  'mysql.pass' => '$mysql_pass',
  'storage.default-namespace' => '$ns',
  'load-libraries' => array('$ext'),
  'phabricator.base-uri' => '$base',
  'security.require-https' => false,
);
PHP
  echo "custom/$name"
}

drop_namespace() {
  local db
  for db in $(sql "SHOW DATABASES LIKE '${1}\\_%'"); do
    sql "DROP DATABASE \`$db\`"
  done
}

clone_namespace() {
  php -r '
    $c = mysqli_connect(getenv("mysql_host"), getenv("mysql_user"),
      getenv("mysql_pass"), "", (int)getenv("mysql_port"));
    list(, $from, $to) = $argv;
    $q = function ($s) use ($c) {
      if (!mysqli_query($c, $s)) {
        fwrite(STDERR, mysqli_error($c)."\n");
        exit(1);
      }
    };
    $like = str_replace("_", "\\_", $from)."\\_%";
    $dbs = mysqli_query($c, "SHOW DATABASES LIKE \x27$like\x27");
    $q("SET SESSION foreign_key_checks = 0");
    while ($row = mysqli_fetch_row($dbs)) {
      $src = $row[0];
      $dst = $to.substr($src, strlen($from));
      $info = mysqli_fetch_row(mysqli_query($c,
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME
          FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = \x27$src\x27"));
      $q("CREATE DATABASE `$dst` CHARACTER SET $info[0] COLLATE $info[1]");
      $tables = mysqli_query($c, "SHOW TABLES FROM `$src`");
      while ($t = mysqli_fetch_row($tables)) {
        $q("CREATE TABLE `$dst`.`$t[0]` LIKE `$src`.`$t[0]`");
        $q("INSERT INTO `$dst`.`$t[0]` SELECT * FROM `$src`.`$t[0]`");
      }
    }' "$1" "$2"
}

service_env() {
  local var
  for var in $(compgen -e | grep '^PHAB_SCIM_' || true); do
    printf '%s\n' -u "$var"
  done
}

start_service() {
  local log=$1 ns=$2 port=$3
  shift 3
  local unset_vars
  mapfile -t unset_vars < <(service_env)
  # NOTE: exec, so $! is the service itself and a kill of it reaches it.
  (exec env "${unset_vars[@]}" \
    PHAB_SCIM_DATABASE_URL="mysql://${mysql_user}${mysql_pass:+:$mysql_pass}@${mysql_host}:${mysql_port}" \
    PHAB_SCIM_NAMESPACE="$ns" \
    PHAB_SCIM_LISTEN="127.0.0.1:$port" \
    "$@" \
    "$PHAB_SCIM_BIN" serve) >"$log" 2>&1 &
  started_pid=$!
  local _
  for _ in $(seq 150); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; then
      return 0
    fi
    kill -0 "$started_pid" 2>/dev/null || break
    sleep 0.2
  done
  tail -20 "$log" >&2
  return 1
}
