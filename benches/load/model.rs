//! The people the bench provisions: Entra-shaped bodies with distinct email-shaped userNames.

use serde_json::{Value, json};

const GIVEN: &[&str] = &[
    "adele",
    "alex",
    "allan",
    "bianca",
    "brian",
    "cameron",
    "christie",
    "debra",
    "diego",
    "emily",
    "enrico",
    "grady",
    "henrietta",
    "irvin",
    "isaiah",
    "johanna",
    "joni",
    "lee",
    "lidia",
    "lynne",
    "megan",
    "miriam",
    "nestor",
    "patti",
    "pradeep",
    "raul",
    "sanjay",
    "tatiana",
    "wanda",
    "yolanda",
    "zrinka",
    "omar",
];
const FAMILY: &[&str] = &[
    "vance",
    "wilber",
    "deyoung",
    "pincela",
    "johnson",
    "white",
    "cline",
    "berger",
    "siciliani",
    "braun",
    "zimmermann",
    "archie",
    "cantrell",
    "sink",
    "langer",
    "lauer",
    "sherman",
    "gu",
    "holloway",
    "mccormick",
    "bowen",
    "graham",
    "wilke",
    "fernandez",
    "gupta",
    "mendez",
    "patel",
    "smirnova",
    "rossi",
    "nakamura",
    "okafor",
    "novak",
];

/// One person, identified by a prefix (`c` created over HTTP, `s` seeded, `b` baseline) and an
/// index.
#[derive(Debug, Clone)]
pub struct Person {
    pub given: &'static str,
    pub family: &'static str,
    /// The Phabricator username the service derives (the userName's local part).
    pub username: String,
    /// SCIM userName and work email.
    pub user_name: String,
    pub external_id: String,
    pub display: String,
    pub index: usize,
}

pub fn person(prefix: &str, i: usize) -> Person {
    let given = GIVEN[i % GIVEN.len()];
    let family = FAMILY[(i / GIVEN.len()) % FAMILY.len()];
    let username = format!("{given}.{family}.{prefix}{i}");
    let user_name = format!("{username}@contoso.example");
    // A stable, UUID-shaped external id (Entra's objectId / mailNickname slot).
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(prefix.bytes().fold(0u8, |a, b| a ^ b));
    let external_id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        h & 0xffff_ffff_ffff
    );
    let display = format!("{} {}", cap(given), cap(family));
    Person {
        given,
        family,
        username,
        user_name,
        external_id,
        display,
        index: i,
    }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The body Entra sends on create, with its default mappings (docs/scim-clients.md#entra-id-users).
pub fn entra_user_body(p: &Person) -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "externalId": p.external_id,
        "userName": p.user_name,
        "active": true,
        "displayName": p.display,
        "emails": [{"primary": true, "type": "work", "value": p.user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": p.display, "familyName": cap(p.family), "givenName": cap(p.given)},
        "title": "Engineer",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": format!("Department {}", p.index % 17),
            "employeeNumber": format!("E{:06}", p.index)
        },
        "roles": []
    })
}

/// Entra's group create body (docs/scim-clients.md#entra-id-groups): members always empty,
/// added by PATCH.
pub fn entra_group_body(name: &str, i: usize) -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
        ],
        "externalId": format!("8aa1a0c0-c4c3-4bc0-b4a5-{:012x}", i),
        "displayName": name,
        "meta": {"resourceType": "Group"}
    })
}

/// Entra's member add (docs/scim-clients.md#entra-id-groups): one op, many values.
pub fn add_members_body(ids: &[&str]) -> Value {
    let values: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "members", "value": values}]
    })
}

/// Entra's default-dialect disable (docs/scim-clients.md#entra-id-users, step 5).
pub fn deactivate_body() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
    })
}
