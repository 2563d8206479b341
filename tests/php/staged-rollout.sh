#!/usr/bin/env bash
# A first rollout, staged, against a Phorge (or Phabricator) that people made
# by hand (README.md, "First rollout: staged mode"). On a scratch namespace:
#   1. bin/storage upgrade with the extension; `phorge_helper.php populate`
#      makes 300 accounts and 24 projects with members through the host's own
#      editors, and an administrator;
#   2. `phab-scim stage`, then the service with mode = "staged"; an IdP's first
#      push (tests/php/idp_directory.py): adoptions, hires, renames, taken
#      usernames, two refused claims, deactivations, groups;
#   3. Phabricator's own tables are unchanged; the Plan page (served by the
#      host, as the admin) shows the counts, the conflicts and the unclaimed
#      accounts; the Database Status page has no issue;
#   4. Apply Plan on the Plan page, which the service picks up and applies
#      (as `phab-scim apply` would); the rows are the plan's: accounts adopted
#      and created, people deactivated with their sessions ended, projects;
#      the host's own workers run every task the writes queued, and none fails.
#   With PHAB_SCIM_SCREENSHOT_DIR set, screenshots the Plan page (before
#   apply) as scim-plan.png, and its entries that need attention as
#   scim-plan-attention.png (docs/ has both).
#
# Environment: PHABRICATOR_ROOT and PHAB_SCIM_BIN (required; skipped without),
# PHAB_SCIM_TEST_MYSQL_HOST/PORT/USER/PASS, PHAB_SCIM_SCREENSHOT_DIR,
# PHAB_SCIM_KEEP=1 (keep serving the pages at the end until interrupted).
set -euo pipefail

if [ -z "${PHABRICATOR_ROOT:-}" ] || [ -z "${PHAB_SCIM_BIN:-}" ]; then
  echo "skipped: PHABRICATOR_ROOT and PHAB_SCIM_BIN are needed"
  exit 0
fi

# shellcheck source=tests/php/host_lib.sh
source "$(dirname "$0")/host_lib.sh"
# shellcheck source=scripts/lib/hosts.sh
source "$(dirname "$0")/../../scripts/lib/hosts.sh"
host_init phabscim_sr

port=$(free_port)
base="http://127.0.0.1:$port"
scim_port=$(free_port)
people=300

step "a populated install: namespace $ns"
host_write_config "$base"
host_storage_upgrade
helper create-user admin >/dev/null
"$root/bin/user" empower --user admin >/dev/null 2>&1 || die "bin/user empower failed"
ok "$(helper populate "$people" 24 admin) made by the host's own editors"
admin_email=$(sql "SELECT e.address FROM \`${ns}_user\`.user_email e JOIN \`${ns}_user\`.user u ON u.phid = e.userPHID WHERE u.userName = 'admin'")

# What a staged rollout must not change: every row of the people's tables.
fingerprint() {
  sql "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', phid, userName, realName, isDisabled, isSystemAgent, dateModified))), 0) FROM \`${ns}_user\`.user"
  sql "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', userPHID, address, isPrimary, isVerified))), 0) FROM \`${ns}_user\`.user_email"
  sql "SELECT COUNT(*) FROM \`${ns}_user\`.phabricator_session"
  sql "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', phid, name, status))), 0) FROM \`${ns}_project\`.project"
  sql "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', src, type, dst))), 0) FROM \`${ns}_project\`.edge"
  sql "SELECT COUNT(*) FROM \`${ns}_user\`.user_transaction"
  sql "SELECT COUNT(*) FROM \`${ns}_project\`.project_transaction"
  sql "SELECT COUNT(*) FROM \`${ns}_worker\`.worker_activetask"
}

step "phab-scim stage, then serve staged"
service_env
"${service_cmd[@]}" stage >"$tmp/stage.log" 2>&1 || { cat "$tmp/stage.log" >&2; die "phab-scim stage failed"; }
ok "$(grep -c '^copied' "$tmp/stage.log") tables copied; $(grep 'user.user$' "$tmp/stage.log")"
service_env
token=$("${service_cmd[@]}" token create --label "Staged IdP" 2>/dev/null | tail -n 1)
before=$(fingerprint)
start_service "$scim_port" "$tmp/service.log" PHAB_SCIM_MODE=staged
answers=$(python3 "$repo/tests/php/idp_directory.py" "http://127.0.0.1:$scim_port/scim/v2" "$token" "$people" "$admin_email") \
  || die "the IdP's push got an answer live mode would not give: $answers"
ok "the IdP's push, answered as live: $answers"
after=$(fingerprint)
if [ "$before" = "$after" ]; then
  ok "Phabricator's tables are unchanged while staged"
else
  fail "a staged push changed Phabricator's tables: $(diff <(echo "$before") <(echo "$after") | tr '\n' ' ')"
fi

count() { sql "SELECT COUNT(*) FROM \`${ns}_scim\`.scim_planentry WHERE kind = '$1'"; }
expect_count() {
  local kind=$1 want=$2 got
  got=$(count "$kind")
  if [ "$got" = "$want" ]; then ok "plan: $want $kind"; else fail "plan: $got $kind, expected $want"; fi
}
expect_count user.adopt $((people - 40))
expect_count user.create 12
expect_count user.deactivate 6
expect_count group.adopt 6
expect_count group.create 3
expect_count conflict 2
taken=$(sql "SELECT COUNT(*) FROM \`${ns}_scim\`.scim_planentry WHERE kind = 'user.create' AND details LIKE '%usernameTaken%'")
[ "$taken" = "3" ] && ok "plan: 3 hires flagged for a taken username" || fail "plan: $taken hires flagged for a taken username"
revoked=$(sql "SELECT COUNT(*) FROM \`${ns}_scim\`.scim_planentry WHERE kind = 'user.deactivate' AND details LIKE '%\"sessions\":1%'")
[ "$revoked" = "6" ] && ok "plan: each deactivation names the session it ends" || fail "plan: $revoked of 6 deactivations name a session"

step "the Plan page, served by the host"
admin_session=$(helper session admin)
host_serve "$base" "$admin_session"
page() { curl -s -o "$tmp/page.html" -w '%{http_code}' "$base$1"; }
shows() {
  local path=$1 code text
  shift
  code=$(page "$path")
  [ "$code" = "200" ] || { fail "$path answered HTTP $code"; return; }
  for text in "$@"; do
    grep -qF "$text" "$tmp/page.html" && ok "$path shows $text" || fail "$path does not show $text"
  done
}
shows /scim/plan/ "Staged Rollout" "Read before applying" "287 pending" "Adopt User" "ada.allen"
# The entries that need attention: the refusals, the taken usernames, the deactivations.
shows "/scim/plan/?kind=attention" "@admin is a Phabricator administrator" "belongs to another SCIM user" "ada.allen2" \
  "grace.allen"
shows "/scim/plan/?kind=user.create" "zoe.hopper" "noah.klein"
shows "/scim/plan/?kind=group.adopt" "Infrastructure" "Payments"
code=$(page /scim/plan/unclaimed/)
unclaimed=$(grep -o '/p/[a-z.]*/' "$tmp/page.html" | sort -u | wc -l)
# The last 40 people, and the administrator.
[ "$code" = "200" ] && [ "$unclaimed" -ge 40 ] && ok "Unclaimed Accounts lists $unclaimed accounts" \
  || fail "Unclaimed Accounts: HTTP $code, $unclaimed accounts"
if helper schema-issues >"$tmp/schema.log"; then
  ok "Database Status: no issue, with the rollout's tables and its copies beside them"
else
  fail "Database Status: $(cat "$tmp/schema.log")"
fi
if [ -n "${PHAB_SCIM_SCREENSHOT_DIR:-}" ]; then
  host_screenshot "$base" plan /scim/plan/ 1700
  host_screenshot "$base" plan-attention "/scim/plan/?kind=attention" 1700
fi

step "Apply Plan on the Plan page; the service applies it"
mark=$(php "$repo/tests/php/downstream.php" task-mark)
shows /scim/plan/ "Apply Plan..."
csrf=$(grep -o 'name="__csrf__" value="[^"]*"' "$tmp/page.html" | head -n 1 | sed 's/.*value="//; s/"$//')
code=$(curl -s -o "$tmp/page.html" -w '%{http_code}' --data-urlencode "__csrf__=$csrf" \
  --data-urlencode "__form__=1" "$base/scim/plan/apply/")
[ "$code" = "302" ] && ok "the admin asked for the plan to be applied" || die "Apply Plan answered HTTP $code"
shows /scim/plan/ "Apply Requested"
# The service's background loop claims the request within 15 seconds; it logs the end once the
# copies are dropped too.
for _ in $(seq 60); do
  grep -q "the staged plan is applied" "$tmp/service.log" && break
  sleep 1
done
phase=$(sql "SELECT phase FROM \`${ns}_scim\`.scim_rollout")
[ "$phase" = "applied" ] || die "the service did not apply the plan within a minute (phase $phase)"
ok "the service applied the plan: $(grep -o 'applied=[0-9]*' "$tmp/service.log" | tail -n 1)"
copies=$(sql "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${ns}_scimstage'")
[ "$copies" = "0" ] && ok "the staged copies are dropped" || fail "the staged copies are still there"
managed=$(sql "SELECT COUNT(*) FROM \`${ns}_scim\`.scim_user")
[ "$managed" = "$((people - 40 + 12))" ] && ok "$managed accounts are managed" || fail "$managed accounts are managed"
disabled=$(sql "SELECT COUNT(*) FROM \`${ns}_user\`.user WHERE isDisabled = 1")
[ "$disabled" = "6" ] && ok "6 people deactivated" || fail "$disabled people deactivated"
sessions=$(sql "SELECT COUNT(*) FROM \`${ns}_user\`.phabricator_session s JOIN \`${ns}_user\`.user u ON u.phid = s.userPHID WHERE u.isDisabled = 1")
[ "$sessions" = "0" ] && ok "their sessions ended" || fail "$sessions sessions of deactivated people remain"
contractor=$(sql "SELECT COUNT(*) FROM \`${ns}_user\`.user WHERE userName IN ('ada.allen2', 'alan.allen2', 'barbara.allen2')")
[ "$contractor" = "3" ] && ok "hires with a taken username got the next one" || fail "$contractor of 3 hires got the next username"
left=$(sql "SELECT COUNT(*) FROM \`${ns}_scim\`.scim_stageop WHERE state <> 'applied'")
[ "$left" = "0" ] && ok "every operation applied" || fail "$left operations not applied"
host_run_workers "$tmp/worker.log"
php "$repo/tests/php/downstream.php" tasks "$mark" >"$tmp/tasks.log" 2>&1 \
  && ok "the host's workers ran every task apply queued: $(tail -n 1 "$tmp/tasks.log")" \
  || { cat "$tmp/tasks.log" >&2; fail "a task apply queued failed in the host's workers"; }

if [ "${PHAB_SCIM_KEEP:-}" = "1" ]; then
  echo "Phorge after apply: $base/scim/plan/ (admin session injected); Ctrl-C to stop"
  wait
fi

echo
if [ "$failures" -ne 0 ]; then
  echo "staged-rollout: $failures failure(s)" >&2
  exit 1
fi
echo "staged-rollout: ok"
