#!/usr/bin/env python3
"""An IdP's first push to a Phabricator whose people were made by hand
(tests/php/staged-rollout.sh): the directory `phorge_helper.php populate`
made, as an IdP holds it, plus what an administrator should see in the plan.

    idp_directory.py BASE_URL TOKEN COUNT ADMIN_EMAIL

BASE_URL is the service's /scim/v2. Person i of COUNT is first[i % 20] +
last[i / 20] (phorge_helper.php scim_people_names). The IdP claims all but the
last 40 (they stay unclaimed), renames a few, hires 12 people (3 of them with a
username an account already has), tries to adopt the administrator and to
claim one account twice (both refused), deactivates 6 people (every 7th
person has a web session), and pushes 9 groups (6 named like existing
projects, which it adopts). Prints one line of counts; exits 1 when an answer
is not what live mode gives.
"""

import json
import sys
import urllib.error
import urllib.request

FIRST = ["ada", "alan", "barbara", "claude", "dennis", "edsger", "frances",
         "grace", "hedy", "ivan", "jean", "ken", "leslie", "margaret",
         "niklaus", "radia", "sophie", "tim", "vint", "whitfield"]
LAST = ["allen", "backus", "cerf", "dijkstra", "engelbart", "floyd",
        "goldberg", "hopper", "iverson", "johnson", "knuth", "lamport",
        "liskov", "milner", "naur", "perlman", "ritchie", "shannon",
        "thompson", "wirth"]
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def person(i):
    first, last = FIRST[i % 20], LAST[(i // 20) % 20]
    return f"{first}.{last}", f"{first.title()} {last.title()}"


class Idp:
    def __init__(self, base, token):
        self.base, self.token = base, token
        self.answers = {}

    def send(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Content-Type", "application/scim+json")
        try:
            with urllib.request.urlopen(req) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        self.answers[status] = self.answers.get(status, 0) + 1
        return status, (json.loads(text) if text else None)

    def expect(self, want, method, path, body=None):
        status, doc = self.send(method, path, body)
        if status != want:
            sys.exit(f"{method} {path}: {status}, not {want}: {doc}")
        return doc

    def user(self, user_name, email, display):
        return {"schemas": [USER], "userName": user_name,
                "displayName": display, "active": True,
                "emails": [{"value": email, "primary": True, "type": "work"}]}


def main():
    base, token, count, admin_email = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    idp = Idp(base, token)
    ids = {}
    claimed = count - 40
    for i in range(claimed):
        name, display = person(i)
        if i % 13 == 5:
            display += " (Contractor)"
        email = f"{name}@corp.example"
        ids[i] = idp.expect(201, "POST", "/Users", idp.user(email, email, display))["id"]
    hires = [("zoe.hopper", "Zoe Hopper"), ("yuki.tanaka", "Yuki Tanaka"),
             ("omar.haddad", "Omar Haddad"), ("lena.berg", "Lena Berg"),
             ("kofi.mensah", "Kofi Mensah"), ("priya.raman", "Priya Raman"),
             ("mateo.silva", "Mateo Silva"), ("ines.costa", "Ines Costa"),
             ("noah.klein", "Noah Klein")]
    for name, display in hires:
        email = f"{name}@corp.example"
        idp.expect(201, "POST", "/Users", idp.user(email, email, display))
    # Contractors whose usernames an employee's account already has.
    for i in (0, 1, 2):
        name, display = person(i)
        email = f"{name}@contractor.example"
        idp.expect(201, "POST", "/Users", idp.user(email, email, display + " (Vendor)"))
    # Refused as live mode refuses them: an administrator is not adopted, and one
    # account is not claimed by two IdP users.
    idp.expect(409, "POST", "/Users", idp.user(admin_email, admin_email, "Administrator"))
    name, _ = person(3)
    idp.expect(409, "POST", "/Users",
               idp.user(f"{name}.second@corp.example", f"{name}@corp.example", "Second Claim"))
    for i in (7, 14, 21, 28, 35, 42):
        idp.expect(200, "PATCH", f"/Users/{ids[i]}",
                   {"schemas": [PATCH],
                    "Operations": [{"op": "replace", "path": "active", "value": False}]})
    teams = ["Infrastructure", "Security", "Mobile", "Data", "Payments", "Search",
             "Platform Guild", "On-call", "Interns"]
    for t, team in enumerate(teams):
        members = [{"value": ids[i]} for i in range(t, claimed, 9)]
        idp.expect(201, "POST", "/Groups",
                   {"schemas": [GROUP], "displayName": team, "members": members})
    print(" ".join(f"{n}x{s}" for s, n in sorted(idp.answers.items())))


if __name__ == "__main__":
    main()
