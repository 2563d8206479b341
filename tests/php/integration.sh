#!/usr/bin/env bash
# Integration test of phabricator-ext against a real Phorge (or Phabricator)
# checkout. Runs only when PHABRICATOR_ROOT names one; see
# phabricator-ext/README.md for how to get one.
#
# On a scratch namespace (dropped afterwards) it:
#   1. loads the library (load-libraries) and runs bin/storage upgrade;
#   2. checks the patch_status keys and that Database Status has no issue
#      for <ns>_scim;
#   3. issues, rotates and revokes tokens with `bin/user scim-token`;
#   4. [hook] provisions a user through the Rust service, if PHAB_SCIM_BIN
#      names its binary;
#   5. serves Phorge with `php -S` and fetches the four pages as an admin
#      (and once as a non-admin), checking what they show;
#   6. with PHAB_SCIM_SCREENSHOT_DIR set, screenshots the pages with
#      headless chromium.
#
# Environment: PHABRICATOR_ROOT (required), PHAB_SCIM_BIN (optional),
# PHAB_SCIM_TEST_MYSQL_HOST/PORT/USER/PASS (default 127.0.0.1:3306 root, no
# password), PHAB_SCIM_SCREENSHOT_DIR, PHAB_SCIM_KEEP=1 (at the end, keep
# serving the pages for a look until interrupted, then clean up).
set -euo pipefail

if [ -z "${PHABRICATOR_ROOT:-}" ]; then
  echo "skipped: PHABRICATOR_ROOT not set"
  exit 0
fi

# shellcheck source=tests/php/host_lib.sh
source "$(dirname "$0")/host_lib.sh"
host_init phabscim_it

web_pid=
port=$(free_port)
base="http://127.0.0.1:$port"

step "config: namespace $ns, library $ext"
host_write_config "$base"

# NOTE: --no-adjust, so the tables are exactly what schema/scim/ creates (as
# `phab-scim migrate` would leave them); a plain upgrade would then ALTER
# them to match the DAOs and hide any difference.
step "bin/storage upgrade --force --no-adjust --namespace $ns"
host_storage_upgrade --no-adjust

expected=$( (echo "phabscim:db.scim"; for f in "$repo"/schema/scim/*; do echo "phabscim:$(basename "$f")"; done) | sort)
actual=$(sql "SELECT patch FROM \`${ns}_meta_data\`.patch_status WHERE patch LIKE 'phabscim:%'" | sort)
if [ "$expected" = "$actual" ]; then
  ok "patch_status has the phabscim keys: $(echo $actual)"
else
  fail "patch_status keys differ"; diff <(echo "$expected") <(echo "$actual") >&2 || true
fi

tables=$(sql "SHOW TABLES FROM \`${ns}_scim\`" | sort | tr '\n' ' ')
ok "tables in ${ns}_scim: $tables"

step "Database Status (the schema query Config > Database Status runs)"
if helper schema-issues >"$tmp/schema.log"; then
  ok "no Database Status issue for ${ns}_scim"
else
  fail "Database Status reports issues for ${ns}_scim"
fi
grep -v '^core ' "$tmp/schema.log" || true
# What an install sees after a plain `bin/storage upgrade` (which adjusts).
"$root/bin/storage" adjust --force --namespace "$ns" >"$tmp/adjust.log" 2>&1 \
  || { tail -20 "$tmp/adjust.log" >&2; fail "bin/storage adjust failed"; }
if helper schema-issues >"$tmp/schema2.log"; then
  ok "after bin/storage adjust: $(tail -n 1 "$tmp/schema2.log")"
else
  fail "after bin/storage adjust: $(tail -n 1 "$tmp/schema2.log")"
fi

step "tokens through bin/user scim-token"
"$root/bin/user" scim-token issue --label "Integration test" >"$tmp/issue.out" 2>"$tmp/issue.err" \
  || { cat "$tmp/issue.err" >&2; die "scim-token issue failed"; }
token=$(tail -n 1 "$tmp/issue.out")
[[ "$token" =~ ^phscim-[1-9][0-9]*-[a-z2-7]{40}$ ]] || die "unexpected token '$token'"
[ "$(wc -l <"$tmp/issue.out")" -eq 1 ] || fail "scim-token issue wrote more than the token to stdout"
token_id=$(echo "$token" | cut -d- -f2)
ok "issued token $token_id (last line of stdout)"
helper token-check "$token" && ok "its hash verifies with password_verify; bot is a non-admin bot" \
  || fail "token check"
hash=$(sql "SELECT tokenHash FROM \`${ns}_scim\`.scim_token WHERE id = $token_id")
php "$repo/tests/php/token_interop.php" verify "${token##*-}" "$hash" \
  && ok "tests/php/token_interop.php verifies the stored hash" || fail "token_interop verify"
bot=$(sql "SELECT CONCAT_WS(' ', u.userName, u.realName, u.isSystemAgent, u.isAdmin, u.isApproved, u.isEmailVerified, e.address, e.isVerified) FROM \`${ns}_user\`.user u JOIN \`${ns}_user\`.user_email e ON e.userPHID = u.phid JOIN \`${ns}_scim\`.scim_token t ON t.botPHID = u.phid WHERE t.id = $token_id")
case "$bot" in
  "scim-bot SCIM Provisioning 1 0 1 1 scim-bot@127.0.0.1 1") ok "bot: $bot" ;;
  *) fail "unexpected bot row: $bot" ;;
esac

"$root/bin/user" scim-token issue --label "To rotate" >"$tmp/issue2.out" 2>/dev/null || die "second issue failed"
old=$(tail -n 1 "$tmp/issue2.out" | cut -d- -f2)
"$root/bin/user" scim-token rotate --id "$old" --grace-hours 0 >"$tmp/rotate.out" 2>"$tmp/rotate.err" \
  || { cat "$tmp/rotate.err" >&2; die "rotate failed"; }
rotated=$(tail -n 1 "$tmp/rotate.out")
new=$(echo "$rotated" | cut -d- -f2)
helper token-check "$rotated" >/dev/null && ok "rotate printed a new working token $new" || fail "rotated token check"
[ "$(sql "SELECT dateExpires <= UNIX_TIMESTAMP() FROM \`${ns}_scim\`.scim_token WHERE id = $old")" = "1" ] \
  && ok "rotated token $old expired (grace 0)" || fail "rotated token $old did not expire"
[ "$(sql "SELECT COUNT(DISTINCT botPHID) FROM \`${ns}_scim\`.scim_token")" = "1" ] \
  && ok "the bot was reused" || fail "more than one bot"
"$root/bin/user" scim-token revoke --id "$new" 2>/dev/null || fail "revoke failed"
[ "$(sql "SELECT dateRevoked IS NOT NULL FROM \`${ns}_scim\`.scim_token WHERE id = $new")" = "1" ] \
  && ok "token $new revoked" || fail "token $new not revoked"
"$root/bin/user" scim-token list >"$tmp/list.out" 2>&1 || fail "list failed"
grep -q "Integration test" "$tmp/list.out" && grep -q revoked "$tmp/list.out" \
  && ok "scim-token list shows the tokens" || fail "scim-token list"

step "web server"
helper create-user admin >/dev/null
"$root/bin/user" empower --user admin >/dev/null 2>&1 || die "bin/user empower failed"
helper create-user alice >/dev/null
admin_session=$(helper session admin)
alice_session=$(helper session alice)
cat >"$tmp/router.php" <<'PHP'
<?php
// Test-only router: logs every request in with the session named by the
// X-Test-Session header, or the admin's.
$session = getenv('PHAB_SCIM_TEST_SESSION');
if (isset($_SERVER['HTTP_X_TEST_SESSION'])) {
  $session = $_SERVER['HTTP_X_TEST_SESSION'];
}
if ($session !== 'none' && !isset($_COOKIE['phsid'])) {
  $_COOKIE['phsid'] = $session;
}
return require getenv('PHABRICATOR_ROOT').'/webroot/index.php';
PHP
spawn "$tmp/web.log" env PHAB_SCIM_TEST_SESSION="$admin_session" \
  php -S "127.0.0.1:$port" -t "$root/webroot" "$tmp/router.php"
web_pid=$!
for _ in $(seq 50); do
  curl -s -o /dev/null "$base/" && break
  sleep 0.2
done

fetch() { curl -s -H "X-Test-Session: ${2:-$admin_session}" -o "$tmp/page.html" -w '%{http_code}' "$base$1"; }
expect_page() {
  local path=$1; shift
  local code
  code=$(fetch "$path")
  if [ "$code" != "200" ]; then
    fail "$path answered HTTP $code"
    sed -e 's/<[^>]*>/ /g' "$tmp/page.html" | tr -s ' \n' | head -c 600 >&2
    return
  fi
  local needle
  for needle in "$@"; do
    if grep -qF -- "$needle" "$tmp/page.html"; then
      ok "$path shows '$needle'"
    else
      fail "$path does not show '$needle'"
    fi
  done
}
expect_absent() {
  local path=$1 needle=$2
  fetch "$path" >/dev/null
  if grep -qF -- "$needle" "$tmp/page.html"; then
    fail "$path shows '$needle'"
  else
    ok "$path does not show '$needle'"
  fi
}

step "pages before the service ran"
expect_page /scim/ "SCIM Provisioning" "$base/scim/v2" \
  "No replica has sent a heartbeat in the last minute" "Managed Users"
expect_page /scim/tokens/ "Integration test" "scim-bot" "Revoked" "Expired" "Issue Token"

code=$(fetch /scim/ "$alice_session")
if [ "$code" = "403" ] || grep -q "Access Denied" "$tmp/page.html"; then
  ok "a non-admin is refused (HTTP $code)"
else
  fail "a non-admin got HTTP $code"
fi

step "tokens through the web UI (issue, rotate, revoke)"
# post <path> [field=value ...]: a form POST with the CSRF token of <path>.
post() {
  local path=$1; shift
  fetch "$path" >/dev/null
  local csrf
  csrf=$(grep -o 'name="__csrf__" value="[^"]*"' "$tmp/page.html" | head -n 1 | sed 's/.*value="//; s/"$//')
  [ -n "$csrf" ] || { fail "no CSRF token on $path"; return 1; }
  local data=(--data-urlencode "__csrf__=$csrf" --data-urlencode "__form__=1")
  local field
  for field in "$@"; do data+=(--data-urlencode "$field"); done
  curl -s -H "X-Test-Session: $admin_session" -o "$tmp/page.html" -w '%{http_code}' "${data[@]}" "$base$path"
}
web_token() { grep -o 'phscim-[1-9][0-9]*-[a-z2-7]\{40\}' "$tmp/page.html" | head -n 1; }

post /scim/tokens/issue/ "label=Web UI token" >/dev/null
web=$(web_token)
if [ -n "$web" ] && helper token-check "$web" >/dev/null; then
  ok "issued token $(echo "$web" | cut -d- -f2) in the web UI; shown once, hash verifies"
else
  fail "issuing a token in the web UI"
fi
web_id=$(echo "$web" | cut -d- -f2)
post "/scim/tokens/$web_id/rotate/" >/dev/null
rotated_web=$(web_token)
if [ -n "$rotated_web" ] && [ "$rotated_web" != "$web" ] && helper token-check "$rotated_web" >/dev/null; then
  ok "rotated token $web_id in the web UI into $(echo "$rotated_web" | cut -d- -f2)"
else
  fail "rotating a token in the web UI"
fi
grace=$(sql "SELECT dateExpires - UNIX_TIMESTAMP() FROM \`${ns}_scim\`.scim_token WHERE id = $web_id")
if [ "$grace" -gt 86000 ] && [ "$grace" -le 86400 ]; then
  ok "the rotated token keeps working for the 24 h grace period"
else
  fail "rotated token $web_id expires in $grace s"
fi
helper token-check "$web" >/dev/null && ok "token $web_id still authenticates during its grace period" \
  || fail "token $web_id stopped working during its grace period"
expect_page /scim/tokens/ "Web UI token" "Expiring"
code=$(post "/scim/tokens/$web_id/revoke/")
[ "$(sql "SELECT dateRevoked IS NOT NULL FROM \`${ns}_scim\`.scim_token WHERE id = $web_id")" = "1" ] \
  && ok "revoked token $web_id in the web UI (HTTP $code)" || fail "revoking a token in the web UI"
expect_page /scim/tokens/ "Web UI token"
if grep -qF -- "$(echo "$web" | cut -d- -f3)" "$tmp/page.html"; then
  fail "the tokens page shows a token secret"
else
  ok "the tokens page shows no token secret"
fi

step "Rust service hook"
if [ -n "${PHAB_SCIM_BIN:-}" ]; then
  svc_port=$(free_port)
  start_service "$svc_port" "$tmp/service.log"
  svc() {
    service_env PHAB_SCIM_LISTEN="127.0.0.1:$svc_port"
    "${service_cmd[@]}" "$@"
  }
  ok "phab-scim serve is up on 127.0.0.1:$svc_port"
  code=$(curl -s -o "$tmp/scim.json" -w '%{http_code}' \
    -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/scim+json' \
    --data '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"carol@example.com","name":{"givenName":"Carol","familyName":"Example"},"displayName":"Carol Example","emails":[{"value":"carol@example.com","type":"work","primary":true}],"active":true}' \
    "http://127.0.0.1:$svc_port/scim/v2/Users")
  if [ "$code" = "201" ]; then
    ok "the Rust service provisioned carol with the PHP-issued token"
  else
    fail "POST /scim/v2/Users answered HTTP $code: $(head -c 400 "$tmp/scim.json")"
    tail -20 "$tmp/service.log" >&2
  fi
  expect_page /scim/log/ "carol" 'href="/p/carol/"'
  expect_page /scim/ "Running"
  managed_users=2

  # The other direction: a token the Rust service issues (and hashes)
  # verifies in PHP and shows on the Tokens page, for the same bot.
  if svc token create --label "Issued by phab-scim" >"$tmp/rust-token.out" 2>"$tmp/rust-token.err"; then
    rust_token=$(tail -n 1 "$tmp/rust-token.out")
    helper token-check "$rust_token" \
      && ok "PHP password_verify accepts the hash of the phab-scim token" \
      || fail "the phab-scim token does not verify in PHP"
    expect_page /scim/tokens/ "Issued by phab-scim"
    [ "$(sql "SELECT COUNT(DISTINCT botPHID) FROM \`${ns}_scim\`.scim_token")" = "1" ] \
      && ok "phab-scim reused the bot" || fail "phab-scim made another bot"
  else
    cat "$tmp/rust-token.err" >&2
    fail "phab-scim token create"
  fi
else
  echo "skipped: PHAB_SCIM_BIN not set (provisioning through the Rust service)"
  managed_users=1
fi

step "pages with service rows (simulated: heartbeat, scim_user, events, drift)"
helper seed-service alice admin
project_id=$(sql "SELECT id FROM \`${ns}_project\`.project WHERE name = 'Design Team'")
expect_page /scim/ "scim-1.example.internal" "Running" "Not Seen" \
  "$managed_users active, 0 disabled, 0 deleted" "Last Hour" "Drift" \
  "Deprovision Guard" "Allowing" "0 of 20 allowed in the last 3,600 seconds" "deprovision_guard_min"
expect_absent /scim/ "No replica has sent a heartbeat in the last minute"
expect_page /scim/log/ "Created user alice" 'href="/p/alice/"' \
  "phoneNumbers kept in SCIM only" "phui-oi-highlighted" \
  "1000 requests from 203.0.113.9 refused" "reason"
# Details as handles and readable text; the token of each call (issue 15).
expect_page /scim/log/ '1 added (<a href="/p/alice/"' "Token $token_id: Integration test" \
  "No token" "2 session(s) ended, 1 API token(s)" "Active</strong>: yes"
expect_absent /scim/log/ "addedIds"
expect_page "/scim/log/?outcomes=warning" "phoneNumbers kept in SCIM only"
expect_absent "/scim/log/?outcomes=warning" "Created user alice"
expect_page "/scim/log/?resourceTypes=Group" "conflicts with an existing project" \
  "href=\"/project/view/$project_id/\""
expect_absent "/scim/log/?resourceTypes=Group" "Created user alice"
expect_page /scim/drift/ "User Re-enabled" "enabled by hand" 'href="/p/alice/"' \
  "Project Renamed" "href=\"/project/view/$project_id/\"" "Unmanaged Account" 'href="/p/mallory/"'
expect_absent /scim/tokens/ "Tokens due for rotation"
helper age-token "$token_id" 100
expect_page /scim/tokens/ "Integration test" "Tokens due for rotation"
expect_page /scim/ "Tokens due for rotation"

if [ -n "${PHAB_SCIM_SCREENSHOT_DIR:-}" ]; then
  step "screenshots"
  mkdir -p "$PHAB_SCIM_SCREENSHOT_DIR"
  for page in status:/scim/ log:/scim/log/ tokens:/scim/tokens/ drift:/scim/drift/; do
    name=${page%%:*}
    path=${page#*:}
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync \
      --hide-scrollbars --user-data-dir="$tmp/chromium" '--screen-info={1280x900}' \
      --screenshot="$PHAB_SCIM_SCREENSHOT_DIR/scim-$name.png" \
      --window-size=1280,900 "$base$path" >/dev/null 2>&1 \
      && ok "screenshot scim-$name.png" || fail "screenshot of $path"
  done
fi

if [ "${PHAB_SCIM_KEEP:-}" = "1" ]; then
  echo "Phorge with the test data: $base/scim/ (admin session is injected); Ctrl-C to stop"
  wait "$web_pid" || true
fi

echo
if [ "$failures" -ne 0 ]; then
  echo "integration: $failures failure(s)" >&2
  exit 1
fi
echo "integration: ok"
