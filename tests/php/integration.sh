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
#   6. with PHAB_SCIM_BIN, downstream of the rows: a SCIM lifecycle through
#      the service (users, a renamed user, groups with member changes, a
#      renamed and a deleted group), with the host's own workers run in
#      between and after (`bin/worker execute --active`); no task may fail
#      or stay active with a failure count, and the host's typeahead, Conduit
#      search and global fulltext search must find the user and the project
#      by their new names (tests/php/downstream.php). A project made in the
#      host's own web form is the baseline: where the host cannot index its
#      own project either, with the same error, tests/php/host-differences.md
#      must list it (and must not list what no longer occurs);
#   7. with PHAB_SCIM_SCREENSHOT_DIR set, screenshots the pages with
#      headless chromium;
#   8. stages a rollout with SQL (scim_rollout, operations, plan entries of
#      every kind, tests/php/phorge_helper.php seed-plan) and checks the
#      Plan and Unclaimed Accounts pages, the rollout on the Status page,
#      and Database Status again (and screenshots the two pages).
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
host_serve "$base" "$admin_session"

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
# submit_form <path> [field=value ...]: submits the form of <path> as a
# browser would, with every field it shows (tests/php/form_fields.php) and the
# given ones changed.
submit_form() {
  local path=$1; shift
  fetch "$path" >/dev/null
  local -A fields=()
  local names=() item name
  while IFS= read -r -d '' item; do
    name=${item%%=*}
    [ -n "${fields[$name]+set}" ] || names+=("$name")
    fields[$name]=${item#*=}
  done < <(php "$repo/tests/php/form_fields.php" "$tmp/page.html" "$path")
  for item in "$@"; do
    name=${item%%=*}
    [ -n "${fields[$name]+set}" ] || names+=("$name")
    fields[$name]=${item#*=}
  done
  local data=()
  for name in "${names[@]}"; do data+=(--data-urlencode "$name=${fields[$name]}"); done
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

step "downstream: the host's own workers, fulltext search and typeahead"
# A SCIM lifecycle through the service, then the host's own code runs every
# task it queued and finds the results by name (tests/php/downstream.php).
downstream() { php "$repo/tests/php/downstream.php" "$@"; }
if grep -q "phutil_register_library('phorge'" "$root/src/__phutil_library_init__.php"; then
  host_kind=phorge
else
  host_kind=phabricator
fi
if [ -n "${PHAB_SCIM_BIN:-}" ] && [ -n "$svc_pid" ]; then
  "$root/bin/user" scim-token issue --label "Downstream" >"$tmp/issue3.out" 2>/dev/null \
    || die "scim-token issue (downstream) failed"
  ds_token=$(tail -n 1 "$tmp/issue3.out")
  # scim <method> <path> [body]: the HTTP status; the body is in $tmp/scim.json.
  scim() {
    curl -s -o "$tmp/scim.json" -w '%{http_code}' -X "$1" \
      -H "Authorization: Bearer $ds_token" -H 'Content-Type: application/scim+json' \
      ${3:+--data "$3"} "http://127.0.0.1:$svc_port/scim/v2$2"
  }
  json_id() { php -r '$j = json_decode(file_get_contents($argv[1]), true); echo $j["id"] ?? "";' "$tmp/scim.json"; }
  # expect_scim <status> <what> <method> <path> [body]
  expect_scim() {
    local want=$1 what=$2 code
    shift 2
    code=$(scim "$@")
    if [ "$code" = "$want" ]; then
      ok "$what (HTTP $code)"
    else
      fail "$what: HTTP $code: $(head -c 400 "$tmp/scim.json")"
    fi
  }
  patch_ops() { printf '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":%s}' "$1"; }

  # The host's own workers: scripts/lib/hosts.sh, host_run_workers.
  # shellcheck source=scripts/lib/hosts.sh
  source "$repo/scripts/lib/hosts.sh"
  run_workers() { host_run_workers "$tmp/worker.log"; }

  mark=$(downstream task-mark)
  # Phase 1: everything but the renames; then the workers run, so that in
  # phase 2 only the renames' own tasks can bring the new names into the
  # host's indexes.
  expect_scim 201 "created user zelda.okafor (as Zelda Smith)" POST /Users \
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"zelda.okafor@example.com","name":{"givenName":"Zelda","familyName":"Smith"},"displayName":"Zelda Smith","emails":[{"value":"zelda.okafor@example.com","type":"work","primary":true}],"active":true}'
  zelda=$(json_id)
  code=$(scim GET '/Users?filter=userName%20eq%20%22carol@example.com%22')
  carol=$(php -r '$j = json_decode(file_get_contents($argv[1]), true); echo $j["Resources"][0]["id"] ?? "";' "$tmp/scim.json")
  [ -n "$carol" ] || fail "carol not found over SCIM (HTTP $code)"
  expect_scim 201 "created group Quasar Guild with carol and zelda" POST /Groups \
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"Quasar Guild\",\"members\":[{\"value\":\"$carol\"},{\"value\":\"$zelda\"}]}"
  guild=$(json_id)
  expect_scim 204 "removed carol from it" PATCH "/Groups/$guild" \
    "$(patch_ops "[{\"op\":\"remove\",\"path\":\"members[value eq \\\"$carol\\\"]\"}]")"
  expect_scim 204 "added carol back" PATCH "/Groups/$guild" \
    "$(patch_ops "[{\"op\":\"add\",\"path\":\"members\",\"value\":[{\"value\":\"$carol\"}]}]")"
  expect_scim 200 "deactivated carol" PATCH "/Users/$carol" \
    "$(patch_ops '[{"op":"replace","path":"active","value":false}]')"
  expect_scim 200 "reactivated carol" PATCH "/Users/$carol" \
    "$(patch_ops '[{"op":"replace","path":"active","value":true}]')"
  expect_scim 201 "created group Doomed Guild" POST /Groups \
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"Doomed Guild\",\"members\":[{\"value\":\"$zelda\"}]}"
  doomed=$(json_id)
  expect_scim 204 "deleted Doomed Guild" DELETE "/Groups/$doomed"

  # The same kind of object made by the host itself, in its web form, as the
  # baseline for what the host's workers and index do with a project.
  code=$(submit_form /project/edit/form/default/ "name=Comet Crew")
  comet_phid=$(sql "SELECT phid FROM \`${ns}_project\`.project WHERE name = 'Comet Crew'")
  if [ -n "$comet_phid" ]; then
    ok "the admin created project Comet Crew in the host's web form (HTTP $code)"
  else
    fail "creating a project in the host's web form (HTTP $code)"
    sed -e 's/<[^>]*>/ /g' "$tmp/page.html" | tr -s ' \n' | grep -io 'error.\{0,200\}' | head -3 >&2 || true
    comet_phid=PHID-PROJ-none
  fi
  run_workers

  # Phase 2.
  expect_scim 200 "renamed zelda Zelda Okafor" PATCH "/Users/$zelda" \
    "$(patch_ops '[{"op":"replace","path":"displayName","value":"Zelda Okafor"},{"op":"replace","path":"name.familyName","value":"Okafor"}]')"
  expect_scim 204 "renamed Quasar Guild Nebula Guild" PATCH "/Groups/$guild" \
    "$(patch_ops '[{"op":"replace","path":"displayName","value":"Nebula Guild"}]')"
  run_workers

  if downstream tasks "$mark" >"$tmp/tasks.out"; then
    ok "the host's workers ran all $(wc -l <"$tmp/tasks.out") task(s) queued since the lifecycle began; none failed"
  else
    fail "tasks failed or are still active:"
    grep -v ' success 0 ' "$tmp/tasks.out" >&2
    grep -E 'EXCEPTION|ERROR' "$tmp/worker.log" | sed -e 's/^\[[^]]*\] //' | sort | uniq -c | head -20 >&2
  fi
  awk '{print $2, $3}' "$tmp/tasks.out" | sort | uniq -c | sed 's/^/  /'

  zelda_phid=$(sql "SELECT phid FROM \`${ns}_user\`.user WHERE userName = 'zelda.okafor'")
  guild_phid=$(sql "SELECT phid FROM \`${ns}_project\`.project WHERE name = 'Nebula Guild'")
  [ -n "$zelda_phid" ] || fail "no Phabricator user zelda.okafor"
  [ -n "$guild_phid" ] || fail "no project Nebula Guild"
  # find <kind> <query> <phid> <what>
  find_ok() {
    if downstream find "$1" "$2" "$3" 2>"$tmp/find.err"; then
      ok "$1 finds $4 by '$2'"
    else
      fail "$1 does not find $4 by '$2': $(cat "$tmp/find.err")"
    fi
  }
  # find_none <kind> <query> <phid> <what> <why>
  find_none() {
    local rc=0
    downstream find "$1" "$2" "$3" 2>"$tmp/find.err" || rc=$?
    case "$rc" in
      0) fail "$1 finds $4 by '$2' ($5)" ;;
      1) ok "$1 does not find $4 by '$2' ($5)" ;;
      *) fail "$1 '$2' failed: $(tail -n 3 "$tmp/find.err")" ;;
    esac
  }
  for kind in user-typeahead user-search fulltext; do
    find_ok "$kind" "Okafor" "$zelda_phid" "zelda"
  done
  for kind in user-typeahead user-search; do
    find_none "$kind" "Smith" "$zelda_phid" "zelda" "her old name"
  done
  find_ok project-typeahead "Nebula" "$guild_phid" "Nebula Guild"
  # The project's fulltext index, compared with a project made in the host's
  # own web form: where the host cannot index its own project either, the
  # reason must be the same and listed in tests/php/host-differences.md.
  key="downstream/project-fulltext"
  listed=$(grep -E "^- ($host_kind|both) $key:" "$repo/tests/php/host-differences.md" || true)
  indexed=1
  for kind in project-search fulltext; do
    downstream find "$kind" "Nebula" "$guild_phid" 2>/dev/null || indexed=
    downstream find "$kind" "Comet" "$comet_phid" 2>/dev/null || indexed=
  done
  if [ -n "$indexed" ]; then
    ok "project-search and fulltext find Nebula Guild by 'Nebula' (and the host-made Comet Crew by 'Comet')"
    [ -z "$listed" ] || fail "tests/php/host-differences.md lists $key for $host_kind, but it no longer occurs"
  else
    # bin/search index --force indexes in strict mode: the error shows.
    index_error() {
      ("$root/bin/search" index --force "$1" 2>&1 || true) | grep -o 'Failed to update search index.*' \
        | sed -e 's/PHID-[A-Z]*-[a-z0-9]*/<phid>/g' | head -n 1 || true
    }
    ours=$(index_error "$guild_phid")
    theirs=$(index_error "$comet_phid")
    echo "  phab-scim's project:  ${ours:-indexed}"
    echo "  host-made project:    ${theirs:-indexed}"
    if [ -n "$ours" ] && [ "$ours" = "$theirs" ] && [ -n "$listed" ]; then
      ok "known host difference ($key): the host cannot index its own project either, with the same error"
    elif [ -n "$ours" ] && [ "$ours" = "$theirs" ]; then
      fail "the host cannot index projects (its own either), and tests/php/host-differences.md does not list $key for $host_kind"
    else
      fail "the host's fulltext index does not find the project phab-scim made (Nebula Guild)"
    fi
  fi
  # NOTE: Nothing forgets a renamed project's old name: the host keeps its
  # old hashtag (PhabricatorProjectNameTransaction), which the typeahead
  # tokens and the fulltext body (PhabricatorProjectFulltextEngine) include.
  # That a query is applied at all: another project's name finds not this one.
  find_none project-typeahead "Comet" "$guild_phid" "Nebula Guild" "another project's name"
  if [ -n "$indexed" ]; then
    find_none project-search "Comet" "$guild_phid" "Nebula Guild" "another project's name"
  fi
else
  echo "skipped: PHAB_SCIM_BIN not set (nothing queued by the Rust service)"
fi

screenshot() { host_screenshot "$base" "$@"; }
if [ -n "${PHAB_SCIM_SCREENSHOT_DIR:-}" ]; then
  step "screenshots"
  mkdir -p "$PHAB_SCIM_SCREENSHOT_DIR"
  for page in status:/scim/ log:/scim/log/ tokens:/scim/tokens/ drift:/scim/drift/; do
    screenshot "${page%%:*}" "${page#*:}"
  done
fi

# Last: the service (PHAB_SCIM_BIN) stages its writes while a rollout is
# staged, and the screenshots above show an install in its normal phase.
step "staged rollout: the Plan page (simulated: rollout, operations, plan entries)"
helper seed-plan admin
expect_page /scim/plan/ "Nothing has been written to Phabricator" "phab-scim apply" \
  "Read before applying" "2 request(s) refused (conflicts)" \
  "1 new account(s) get another username" "2 account(s) are deactivated or deleted" \
  "For 2 account(s), 4 session(s) end, 1 API token(s) and 2 one-time link(s) are revoked" \
  "Show the 5 entries that need attention" "7 pending" "2 applied" "1 failed" \
  "Create User" "Adopt User" "Rehire User" "Update User" "Deactivate User" \
  "Reactivate User" "Delete User" "Create Project" "Adopt Project" "Update Project" \
  "Delete Project" "Project Members" "Conflict" \
  "create user zoe@example.com as @zoe2" "Derived username taken" \
  'href="/p/bob/"' "Legacy Ops</a>" "New</span>" "@zoe2 (new)" "Matched by" \
  "project members changed by hand" "POST /Groups 409" "Unclaimed Accounts"
expect_absent /scim/plan/ "addedIds"
expect_page "/scim/plan/?kind=conflict" "two projects match" 'href="/p/erin/"'
expect_absent "/scim/plan/?kind=conflict" "adopt user bob@example.com"
expect_page "/scim/plan/?kind=attention" "deactivate user dave@example.com" \
  "delete user hank@example.com" "as @zoe2" "two projects match"
expect_absent "/scim/plan/?kind=attention" "adopt user bob@example.com"
expect_page "/scim/plan/?state=failed" "rename project Design Team to Design" \
  "project members changed by hand"
expect_absent "/scim/plan/?state=failed" "create user zoe@example.com"
expect_absent "/scim/plan/?state=failed" "two projects match"
# Unclaimed: enabled accounts no plan entry (but a conflict) names, that
# scim_user does not manage and that are no token's bot.
expect_page /scim/plan/unclaimed/ 'href="/p/erin/"' 'href="/p/frank/"' 'href="/p/mallory/"'
for claimed in bob dave hank alice gina scim-bot; do
  expect_absent /scim/plan/unclaimed/ "href=\"/p/$claimed/\""
done
expect_page /scim/ "Staged rollout: Staged" "7 pending plan operation(s)" 'href="/scim/plan/"'
code=$(fetch /scim/plan/ "$alice_session")
if [ "$code" = "403" ] || grep -q "Access Denied" "$tmp/page.html"; then
  ok "a non-admin is refused the Plan page (HTTP $code)"
else
  fail "a non-admin got HTTP $code for the Plan page"
fi
if helper schema-issues >"$tmp/schema3.log"; then
  ok "with the plan rows: $(tail -n 1 "$tmp/schema3.log")"
else
  fail "with the plan rows: $(tail -n 1 "$tmp/schema3.log")"
fi
if [ -n "${PHAB_SCIM_SCREENSHOT_DIR:-}" ]; then
  screenshot plan /scim/plan/ 1600
  screenshot unclaimed /scim/plan/unclaimed/
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
