#!/usr/bin/env bash
# A real login through the host's LDAP provider to an account phab-scim
# provisioned with `login_provider` set (README: Configuration).
#
#   tests/php/ldap-login.sh [PHABRICATOR_ROOT [PHAB_SCIM_BIN]]
#
# Arguments override the variables of the same name. On a scratch namespace
# (dropped afterwards) it:
#   1. starts a private OpenLDAP directory (slapd on 127.0.0.1, a free port,
#      its config and database in a temporary directory) holding carol and
#      dave;
#   2. serves the host with `php -S` (tests/php/router.php) and, as an admin
#      through the host's own form (Auth > Add Provider > LDAP), adds the
#      LDAP provider; where that form fails under this PHP (the final
#      Phabricator), says so and takes its steps through the same editor;
#   3. provisions carol over SCIM with login_provider = ldap:self, and dave
#      through a second replica without login_provider (the control);
#   4. logs carol in through the LDAP form over HTTP: the session is hers
#      (the host's own session lookup and the page say so), no registration
#      form; the same login for dave lands on the registration workflow, so
#      the check can tell a linked account from an unlinked one;
#   5. deactivates carol over SCIM: her session is gone (row and page), and
#      logging in again through LDAP, whose password still works, gets the
#      host's "Account Disabled" roadblock instead of her account.
#
# Needs slapd, slapadd and ldapwhoami (Debian: slapd ldap-utils) and PHP's
# ldap extension. Environment as tests/php/host_lib.sh.
set -euo pipefail

[ -n "${1:-}" ] && PHABRICATOR_ROOT=$1
[ -n "${2:-}" ] && PHAB_SCIM_BIN=$2
if [ -z "${PHABRICATOR_ROOT:-}" ]; then
  echo "skipped: PHABRICATOR_ROOT not set"
  exit 0
fi
[ -n "${PHAB_SCIM_BIN:-}" ] || { echo "FAIL: PHAB_SCIM_BIN (the phab-scim binary) not set" >&2; exit 1; }
PHAB_SCIM_BIN=$(cd "$(dirname "$PHAB_SCIM_BIN")" && pwd)/$(basename "$PHAB_SCIM_BIN")
[ -x "$PHAB_SCIM_BIN" ] || { echo "FAIL: $PHAB_SCIM_BIN is not executable" >&2; exit 1; }
export PHABRICATOR_ROOT PHAB_SCIM_BIN

# Debian puts slapd in /usr/sbin, which a non-root PATH may lack.
PATH=$PATH:/usr/sbin
for tool in slapd slapadd ldapwhoami; do
  command -v "$tool" >/dev/null \
    || { echo "FAIL: $tool not found (Debian: apt-get install slapd ldap-utils)" >&2; exit 1; }
done
php -r 'exit(function_exists("ldap_bind") ? 0 : 1);' \
  || { echo "FAIL: PHP has no ldap extension (Debian: php-ldap)" >&2; exit 1; }

# shellcheck source=tests/php/host_lib.sh
source "$(dirname "$0")/host_lib.sh"
host_init phabscim_ldap
started=$SECONDS

port=$(free_port)
base="http://127.0.0.1:$port"
suffix="dc=example,dc=com"
people="ou=people,$suffix"

step "slapd on 127.0.0.1 (private config and database in $tmp/slapd)"
ldap_port=$(free_port)
mkdir -p "$tmp/slapd/db"
# NOTE: Debian builds the backends as modules (/usr/lib/ldap); no access
# directives means every entry may read the directory, which the provider's
# search after the user's own bind needs.
cat >"$tmp/slapd/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile $tmp/slapd/slapd.pid
argsfile $tmp/slapd/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "$suffix"
rootdn "cn=admin,$suffix"
directory $tmp/slapd/db
CONF
ldap_person() {
  cat <<LDIF

dn: uid=$1,$people
objectClass: inetOrgPerson
uid: $1
cn: $2
sn: Example
mail: $1@example.com
userPassword: $1-secret
LDIF
}
{
  printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n' "$suffix"
  printf 'dn: %s\nobjectClass: organizationalUnit\nou: people\n' "$people"
  ldap_person carol "Carol Example"
  ldap_person dave "Dave Example"
} >"$tmp/slapd/people.ldif"
slapadd -q -f "$tmp/slapd/slapd.conf" -l "$tmp/slapd/people.ldif" >"$tmp/slapd/slapadd.log" 2>&1 \
  || { cat "$tmp/slapd/slapadd.log" >&2; die "slapadd failed"; }
# -d 0: stay in the foreground (so cleanup's kill reaches it) and log nothing.
spawn "$tmp/slapd/slapd.log" slapd -d 0 -h "ldap://127.0.0.1:$ldap_port/" -f "$tmp/slapd/slapd.conf"
slapd_pid=$!
ldap_bind() {
  ldapwhoami -x -H "ldap://127.0.0.1:$ldap_port/" -D "uid=$1,$people" -w "$2" >/dev/null 2>&1
}
for _ in $(seq 50); do
  ldap_bind carol carol-secret && break
  kill -0 "$slapd_pid" 2>/dev/null || break
  sleep 0.1
done
ldap_bind carol carol-secret || { cat "$tmp/slapd/slapd.log" >&2; die "slapd did not accept carol's bind"; }
if ldap_bind carol wrong-password; then
  die "slapd accepted a wrong password"
fi
ok "slapd (pid $slapd_pid) on ldap://127.0.0.1:$ldap_port/ binds carol, refuses a wrong password"

step "config and bin/storage upgrade (namespace $ns)"
host_write_config "$base"
host_storage_upgrade --no-adjust

step "php -S on $base"
spawn "$tmp/web.log" php -S "127.0.0.1:$port" -t "$root/webroot" "$repo/tests/php/router.php"
for _ in $(seq 50); do
  curl -s -o /dev/null "$base/" && break
  sleep 0.2
done
curl -s -o /dev/null "$base/" || { tail -20 "$tmp/web.log" >&2; die "php -S does not answer on $base"; }
helper create-user admin >/dev/null
"$root/bin/user" empower --user admin >/dev/null 2>&1 || die "bin/user empower failed"
admin_session=$(helper session admin)
ok "the host answers; admin has a session"

# page <curl options...> <path>: fetches into $tmp/page.html, prints
# "<http code> <last URL>" (after redirects, with -L).
page() {
  local args=("$@")
  local path=${args[-1]}
  unset 'args[-1]'
  curl -s "${args[@]}" -o "$tmp/page.html" -w '%{http_code} %{url_effective}' "$base$path"
}
# (Both may find nothing: "|| true", or pipefail would end the test unexplained.)
csrf_of_page() {
  { grep -o 'name="__csrf__" value="[^"]*"' "$tmp/page.html" || true; } \
    | head -n 1 | sed 's/.*value="//; s/"$//'
}
# text_of_page: what a failure shows: the page's text, and the host's last
# exception (with its stack) from the web server's log.
text_of_page() {
  sed -e 's/<style.*<\/style>//; s/<[^>]*>/ /g' "$tmp/page.html" | tr -s ' \n' | head -c 600
  echo
  { grep -A 12 'EXCEPTION' "$tmp/web.log" || true; } | tail -n 13 | cut -c 1-300
}

step "the admin adds the LDAP provider (Auth > Add Provider > LDAP)"
# The property keys of PhabricatorLDAPAuthProvider, its form's field names
# (the misspelt anonymous-username key included).
ldap_properties=(
  "ldap:host=127.0.0.1" "ldap:port=$ldap_port" "ldap:dn=$people"
  "ldap:search-attribute=uid" "ldap:username-attribute=uid"
  "ldap:realname-attributes=cn" "ldap:version=3" "ldap:referrals=0"
  "ldap:start-tls=0" "ldap:always-search=0" "ldap:anoynmous-username="
  "ldap:anonymous-password=" "ldap:activedirectory-domain=")
admin=(-b "phsid=$admin_session")
form_path="/auth/config/edit/?provider=PhabricatorLDAPAuthProvider"
page "${admin[@]}" "$form_path" >/dev/null
csrf=$(csrf_of_page)
[ -n "$csrf" ] || { text_of_page >&2; die "no CSRF token on $form_path"; }
form=(--data-urlencode "__csrf__=$csrf" --data-urlencode "__form__=1"
  --data-urlencode "allowLogin=1" --data-urlencode "allowRegistration=1"
  --data-urlencode "allowLink=1" --data-urlencode "allowUnlink=1"
  --data-urlencode "trustEmails=0")
for property in "${ldap_properties[@]}"; do
  form+=(--data-urlencode "$property")
done
result=$(page "${admin[@]}" -L "${form[@]}" "$form_path")
providers() {
  sql "SELECT CONCAT_WS(' ', phid, providerClass, providerType, providerDomain, isEnabled, shouldAllowLogin, shouldAllowRegistration) FROM \`${ns}_auth\`.auth_providerconfig"
}
provider=$(providers)
# NOTE: the final Phabricator's form calls strlen() on the new config's null
# providerType (PhabricatorAuthEditController), which PHP 8.1+ deprecates and
# its error handler turns into an exception: no admin can add a provider
# there. The helper then takes the controller's steps itself, through the
# same editor; any other failure of the form fails the test.
known_bug='strlen(): Passing null to parameter #1 ($string) of type string is deprecated'
exception=$(grep -A 2 'EXCEPTION' "$tmp/web.log" || true)
if [ -z "$provider" ] && [[ "$result" == 500* ]] && [[ "$exception" == *"$known_bug"* ]] \
  && [[ "$exception" == *"PhabricatorAuthEditController.php"* ]]; then
  echo "note: the host's Add Provider form fails under PHP $(php -r 'echo PHP_VERSION;') ($known_bug, in PhabricatorAuthEditController); adding it through the same editor"
  properties_json=$(php -r '
    $p = array();
    foreach (array_slice($argv, 1) as $kv) {
      list($k, $v) = explode("=", $kv, 2);
      $p[$k] = $v;
    }
    $p["ldap:realname-attributes"] = array($p["ldap:realname-attributes"]);
    echo json_encode($p);' "${ldap_properties[@]}")
  helper add-provider admin PhabricatorLDAPAuthProvider "$properties_json" >/dev/null \
    || die "adding the provider through the host's editor failed"
  provider=$(providers)
  how="the host's editor, as the form would"
else
  how="the host's form ($result)"
fi
xactions=$(sql "SELECT COUNT(*) FROM \`${ns}_auth\`.auth_providerconfigtransaction")
case "$provider" in
  "PHID-AUTH-"*" PhabricatorLDAPAuthProvider ldap self 1 1 1")
    ok "provider ${provider%% *} through $how, $xactions transactions" ;;
  *) text_of_page >&2; die "no LDAP provider after the form ($result): '$provider'" ;;
esac
[ "$xactions" -gt 0 ] || fail "the provider has no transactions (not made by the host's editor?)"
provider_phid=${provider%% *}

step "SCIM: carol with login_provider = ldap:self, dave without (the control)"
"$root/bin/user" scim-token issue --label "LDAP login test" >"$tmp/issue.out" 2>"$tmp/issue.err" \
  || { cat "$tmp/issue.err" >&2; die "scim-token issue failed"; }
token=$(tail -n 1 "$tmp/issue.out")
linked_port=$(free_port)
start_service "$linked_port" "$tmp/service-linked.log" PHAB_SCIM_LOGIN_PROVIDER=ldap:self
plain_port=$(free_port)
start_service "$plain_port" "$tmp/service-plain.log"
plain_pid=$svc_pid
ok "two replicas: 127.0.0.1:$linked_port (login_provider = ldap:self), 127.0.0.1:$plain_port (none)"

# scim <port> <method> <path> [body]: prints the HTTP code; body in $tmp/scim.json.
scim() {
  curl -s -o "$tmp/scim.json" -w '%{http_code}' -X "$2" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/scim+json' \
    ${4:+--data "$4"} "http://127.0.0.1:$1/scim/v2$3"
}
json_field() { php -r '$j = json_decode(file_get_contents($argv[1]), true); echo $j[$argv[2]] ?? "";' "$tmp/scim.json" "$1"; }
provision() {
  local port=$1 name=$2 code
  code=$(scim "$port" POST /Users "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"$name@example.com\",\"externalId\":\"ext-$name\",\"name\":{\"givenName\":\"${name^}\",\"familyName\":\"Example\"},\"displayName\":\"${name^} Example\",\"emails\":[{\"value\":\"$name@example.com\",\"type\":\"work\",\"primary\":true}],\"active\":true}")
  [ "$code" = "201" ] || { head -c 400 "$tmp/scim.json" >&2; die "POST /Users for $name answered HTTP $code"; }
  json_field id
}
carol_id=$(provision "$linked_port" carol)
dave_id=$(provision "$plain_port" dave)
stop "$plain_pid"
links() {
  sql "SELECT CONCAT_WS(' ', a.accountType, a.accountDomain, i.identifierRaw) FROM \`${ns}_user\`.user u JOIN \`${ns}_user\`.user_externalaccount a ON a.userPHID = u.phid JOIN \`${ns}_user\`.user_externalaccountidentifier i ON i.externalAccountPHID = a.phid WHERE u.userName = '$1' AND a.providerConfigPHID = '$provider_phid'"
}
[ "$(links carol)" = "ldap self carol" ] && ok "carol ($carol_id) is linked to the provider as 'carol'" \
  || fail "carol's link to the provider: '$(links carol)'"
[ -z "$(links dave)" ] && ok "dave ($dave_id) is not linked" || fail "dave is linked: '$(links dave)'"

# ldap_login <jar> <user> <password>: a browser's way through the LDAP form
# of the login page (which also sets the client-ID cookie the logged-out CSRF
# token is bound to); follows the redirects. Prints "<http code> <last URL>".
ldap_login() {
  local jar=$1
  local c=(-c "$jar" -b "$jar")
  page "${c[@]}" /auth/start/ >/dev/null
  local form_csrf
  form_csrf=$(csrf_of_page)
  [ -n "$form_csrf" ] || { text_of_page >&2; die "no CSRF token on the LDAP login form"; }
  page "${c[@]}" -L --data-urlencode "__csrf__=$form_csrf" --data-urlencode "__form__=1" \
    --data-urlencode "ldap_username=$2" --data-urlencode "ldap_password=$3" \
    /auth/login/ldap:self/
}
# session_user <key>: "<username> <phid> <partial>" of the web session the
# host finds for a phsid cookie; empty for none (or no cookie).
session_user() {
  [ -n "$1" ] || return 0
  helper session-user "$1" || echo "(session lookup failed)"
}
cookie() { awk -v n="$2" '$6 == n { v = $7 } END { print v }' "$1"; }
sessions_of() {
  sql "SELECT COUNT(*) FROM \`${ns}_user\`.phabricator_session s JOIN \`${ns}_user\`.user u ON u.phid = s.userPHID WHERE u.userName = '$1'"
}

step "carol logs in through LDAP"
result=$(ldap_login "$tmp/carol.jar" carol carol-secret)
carol_key=$(cookie "$tmp/carol.jar" phsid)
who=$(session_user "$carol_key")
if [ -n "$carol_key" ] && [ "$who" = "carol $carol_id 0" ]; then
  ok "the session cookie resolves to carol ($carol_id), a full session ($result)"
else
  text_of_page >&2
  fail "after the login ($result) the session cookie resolves to '$who', not carol $carol_id"
fi
case "$result" in
  *"/auth/register/"*) fail "carol got the registration form ($result)" ;;
esac
grep -q "Register New Account\|ldap_username" "$tmp/page.html" \
  && fail "the page after carol's login is a registration or login form"
page -b "$tmp/carol.jar" / >/dev/null
if grep -qF 'href="/p/carol/"' "$tmp/page.html"; then
  ok "the home page shows carol's profile link"
else
  text_of_page >&2
  fail "the home page does not show carol's profile link"
fi
[ "$(sessions_of carol)" -ge 1 ] && ok "phabricator_session has $(sessions_of carol) row(s) for carol" \
  || fail "no phabricator_session row for carol"

step "dave (provisioned without login_provider) logs in through LDAP: the control"
result=$(ldap_login "$tmp/dave.jar" dave dave-secret)
who=$(session_user "$(cookie "$tmp/dave.jar" phsid)")
# NOTE: PhabricatorAuthRegisterController; as dave's address (from the
# directory's mail attribute) belongs to the SCIM-made account, the host opens
# the registration with "Email Address Already in Use" instead of the form.
case "$result" in
  *"/auth/register/"*)
    if [ -z "$who" ] && ! grep -qF 'href="/p/dave/"' "$tmp/page.html" \
      && grep -q 'name="username"\|Email Address Already in Use' "$tmp/page.html"; then
      ok "dave lands on the registration workflow, with no session ($result)"
    else
      text_of_page >&2
      fail "dave's registration page is not a registration step, or he has a session '$who'"
    fi
    ;;
  *) text_of_page >&2; fail "dave did not land on the registration workflow ($result; session '$who')" ;;
esac
[ "$(sessions_of dave)" = "0" ] && ok "no phabricator_session row for dave" \
  || fail "dave has a session"

step "SCIM deactivates carol"
code=$(scim "$linked_port" PATCH "/Users/$carol_id" \
  '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}')
[ "$code" = "200" ] && ok "PATCH active=false answered 200" \
  || { head -c 400 "$tmp/scim.json" >&2; fail "PATCH active=false answered HTTP $code"; }
[ "$(sessions_of carol)" = "0" ] && ok "carol's phabricator_session rows are gone" \
  || fail "carol still has $(sessions_of carol) session row(s)"
who=$(session_user "$carol_key")
[ -z "$who" ] && ok "her old session cookie resolves to no one" || fail "her old cookie resolves to '$who'"
# The host replaces a cookie whose session is gone (PhabricatorAuthStartController:
# /?cleared=1, then / with an anonymous "A/" session) and shows the login page.
result=$(page -c "$tmp/carol.jar" -b "$tmp/carol.jar" -L /)
if grep -qF 'href="/p/carol/"' "$tmp/page.html" || grep -q 'Account Disabled' "$tmp/page.html"; then
  text_of_page >&2
  fail "with her old cookie the home page still knows carol ($result)"
elif new_key=$(cookie "$tmp/carol.jar" phsid) && [ "$new_key" != "$carol_key" ] \
  && [ -z "$(session_user "$new_key")" ] && grep -q 'ldap_username' "$tmp/page.html"; then
  ok "with her old cookie the host replaces it and shows the login page ($result)"
else
  text_of_page >&2
  fail "with her old cookie the home page is neither carol's nor a cleared login page ($result)"
fi

step "carol logs in through LDAP again (the directory still accepts her password)"
ldap_bind carol carol-secret || fail "slapd no longer binds carol"
rm -f "$tmp/carol.jar"
result=$(ldap_login "$tmp/carol.jar" carol carol-secret)
# NOTE: the host lets a disabled user authenticate and then roadblocks every
# page (PhabricatorAuthController::loginUser, PhabricatorDisabledUserController).
if grep -q 'Account Disabled' "$tmp/page.html"; then
  ok "the login ends on the host's Account Disabled page ($result)"
else
  text_of_page >&2
  fail "the login after deactivation did not end on Account Disabled ($result)"
fi
page -b "$tmp/carol.jar" /settings/ >/dev/null
if grep -q 'Account Disabled' "$tmp/page.html" && ! grep -q 'Account Settings\|Preferences' "$tmp/page.html"; then
  ok "her settings are refused with Account Disabled too"
else
  text_of_page >&2
  fail "after the refused login /settings/ is served"
fi

echo
echo "ldap-login: $((SECONDS - started)) s on $root"
if [ "$failures" -ne 0 ]; then
  echo "ldap-login: $failures failure(s)" >&2
  exit 1
fi
echo "ldap-login: ok"
