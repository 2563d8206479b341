#!/usr/bin/env bash
# Differential suite: the host's own code is the oracle.
#
#   PHABRICATOR_ROOT=<phorge or phabricator checkout> PHAB_SCIM_BIN=<phab-scim binary> \
#     tests/php/differential.sh
#
# Every operation of tests/php/differential/operations.php runs twice from
# the same starting state: once through the host's own PHP editors
# (differential/oracle.php) in one storage namespace, once as SCIM requests
# to phab-scim (differential/scim.php) in a copy of it. Both namespaces are
# dumped before and after each operation (differential/snapshot.php, every
# table); differential/compare.php masks what may legitimately differ (its
# header lists the rules) and compares the changed rows. Every remaining
# difference must be listed, with its reason, in the "Differential suite"
# table of tests/php/host-differences.md; an unlisted difference fails, and
# so does a listed one that no longer occurs.
#
# Environment: PHABRICATOR_ROOT, PHAB_SCIM_BIN (both required; without
# PHABRICATOR_ROOT the suite is skipped), PHAB_SCIM_TEST_MYSQL_HOST/PORT/
# USER/PASS (default 127.0.0.1:3306 root, no password), DIFF_HOST (phorge or
# phabricator; guessed from the checkout), DIFF_ONLY (space-separated
# operations to run, for debugging: the others are skipped and the check for
# listed differences that no longer occur is off), DIFF_VERBOSE=1 (print
# listed differences too), PHAB_SCIM_KEEP=1 (keep the namespaces and
# snapshots, and print where they are).
set -euo pipefail

if [ -z "${PHABRICATOR_ROOT:-}" ]; then
  echo "skipped: PHABRICATOR_ROOT not set"
  exit 0
fi
if [ -z "${PHAB_SCIM_BIN:-}" ] || [ ! -x "$PHAB_SCIM_BIN" ]; then
  echo "PHAB_SCIM_BIN must name the phab-scim binary" >&2
  exit 1
fi

repo=$(cd "$(dirname "$0")/../.." && pwd)
root=$(cd "$PHABRICATOR_ROOT" && pwd)
export PHABRICATOR_ROOT="$root"
PHAB_SCIM_BIN=$(cd "$(dirname "$PHAB_SCIM_BIN")" && pwd)/$(basename "$PHAB_SCIM_BIN")
here="$repo/tests/php/differential"
listing="$repo/tests/php/host-differences.md"
# shellcheck source=tests/php/differential_lib.sh
source "$repo/tests/php/differential_lib.sh"

if [ ! -x "$root/bin/storage" ]; then
  echo "PHABRICATOR_ROOT=$root is not a Phorge or Phabricator checkout" >&2
  exit 1
fi
if [ -z "${DIFF_HOST:-}" ]; then
  if grep -qi phorge "$root/README.md" 2>/dev/null; then
    DIFF_HOST=phorge
  else
    DIFF_HOST=phabricator
  fi
fi

started=$(date +%s)
run="pdiff_$(php -r 'echo bin2hex(random_bytes(3));')"
ns_host="${run}_h"
ns_scim="${run}_s"
tmp=$(mktemp -d)
svc_pids=()

cleanup() {
  set +e
  local pid
  for pid in "${svc_pids[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ "${PHAB_SCIM_KEEP:-}" = "1" ]; then
    echo "kept: namespaces $ns_host (host) and $ns_scim (phab-scim), files in $tmp"
    return
  fi
  drop_namespace "$ns_host"
  drop_namespace "$ns_scim"
  rm -f "$root/conf/custom/$run-h.conf.php" "$root/conf/custom/$run-s.conf.php"
  rmdir "$root/conf/custom" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

env_host=$(host_conf "$ns_host" "$run-h")
env_scim=$(host_conf "$ns_scim" "$run-s")
on_host() { PHABRICATOR_ENV="$env_host" "$@"; }
on_scim() { PHABRICATOR_ENV="$env_scim" "$@"; }

echo "== $DIFF_HOST at $root: namespaces $ns_host (host code) and $ns_scim (phab-scim)"
if ! on_host "$root/bin/storage" upgrade --force --namespace "$ns_host" >"$tmp/upgrade.log" 2>&1; then
  tail -30 "$tmp/upgrade.log" >&2
  echo "bin/storage upgrade failed" >&2
  exit 1
fi
on_host "$root/bin/user" scim-token issue --label "Differential suite" >"$tmp/token.out" 2>"$tmp/token.err" \
  || { cat "$tmp/token.err" >&2; exit 1; }
token=$(tail -n 1 "$tmp/token.out")
on_host php "$here/oracle.php" fixture
clone_namespace "$ns_host" "$ns_scim"
echo "starting state: storage upgrade, SCIM token and bot, fixture; copied ($(( $(date +%s) - started )) s)"

port=$(free_port)
start_service "$tmp/service.log" "$ns_scim" "$port" PHAB_SCIM_DRIFT_INTERVAL_SECS=0 \
  || { echo "phab-scim serve did not start" >&2; exit 1; }
svc_pids+=("$started_pid")
ldap_port=$(free_port)
start_service "$tmp/service-ldap.log" "$ns_scim" "$ldap_port" PHAB_SCIM_DRIFT_INTERVAL_SECS=0 \
  PHAB_SCIM_LOGIN_PROVIDER=ldap:self \
  || { echo "phab-scim serve (login_provider) did not start" >&2; exit 1; }
svc_pids+=("$started_pid")
export DIFF_SCIM_URL="http://127.0.0.1:$port/scim/v2"
export DIFF_SCIM_LDAP_URL="http://127.0.0.1:$ldap_port/scim/v2"
export DIFF_SCIM_TOKEN="$token"

ops=$(php -r 'require $argv[1]; echo implode(" ", array_keys(differential_operations()));' \
  "$here/operations.php")
prepare=$(php -r 'require $argv[1];
  foreach (differential_operations() as $k => $op) {
    echo $k, " ", implode(" ", isset($op["prepare"]) ? $op["prepare"] : array()), "\n";
  }' "$here/operations.php")

snap() { php "$here/snapshot.php" "$@"; }
manifest="$tmp/manifest.json"
echo "[" >"$manifest"
n=0
for op in $ops; do
  if [ -n "${DIFF_ONLY:-}" ] && [[ " $DIFF_ONLY " != *" $op "* ]]; then
    continue
  fi
  for user in $(echo "$prepare" | awk -v op="$op" '$1 == op { $1 = ""; print }'); do
    on_host php "$here/oracle.php" prepare "$user"
    on_scim php "$here/oracle.php" prepare "$user"
  done
  n=$((n + 1))
  snap "$ns_host" "$tmp/$n-h0.json" --before
  if ! on_host php "$here/oracle.php" op "$op" >"$tmp/$n-host.log" 2>&1; then
    cat "$tmp/$n-host.log" >&2
    echo "FAIL: $op through the host's code" >&2
    exit 1
  fi
  snap "$ns_host" "$tmp/$n-h1.json"
  snap "$ns_scim" "$tmp/$n-s0.json" --before
  if ! php "$here/scim.php" "$op" "$tmp/scim-ids.json" >"$tmp/$n-scim.log" 2>&1; then
    cat "$tmp/$n-scim.log" >&2
    echo "FAIL: $op through phab-scim" >&2
    exit 1
  fi
  snap "$ns_scim" "$tmp/$n-s1.json"
  [ "$n" -gt 1 ] && echo "," >>"$manifest"
  printf '{"op":"%s","host":["%s","%s"],"scim":["%s","%s"]}\n' "$op" \
    "$tmp/$n-h0.json" "$tmp/$n-h1.json" "$tmp/$n-s0.json" "$tmp/$n-s1.json" >>"$manifest"
done
echo "]" >>"$manifest"
echo "ran $n operation(s) on both sides ($(( $(date +%s) - started )) s)"
echo

status=0
# A partial run (DIFF_ONLY) cannot tell which listed differences no longer
# occur; it still fails on unlisted ones.
DIFF_PARTIAL=${DIFF_ONLY:+1} php "$here/compare.php" "$DIFF_HOST" "$manifest" "$listing" || status=1
echo "differential ($DIFF_HOST): $(( $(date +%s) - started )) s"
exit "$status"
