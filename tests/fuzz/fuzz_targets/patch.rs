//! PATCH bodies: request parsing, then application to a normalised User and Group document
//! (as `provisioning::users::patch_user` does), then re-normalisation and the User and Group
//! readers of the result, and the group member plan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phab_scim::scim::group::{GroupSpec, split_patch};
use phab_scim::scim::patch::{apply, parse_request};
use phab_scim::scim::resource::normalize;
use phab_scim::scim::schema::Resource;
use phab_scim::scim::user::UserSpec;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(ops) = parse_request(&body) else { return };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "jane@example.com",
        "displayName": "Jane Doe",
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "active": true,
        "emails": [{"value": "jane@example.com", "type": "work", "primary": true}, {"value": "j@home.example", "type": "home"}],
        "phoneNumbers": [{"value": "+1 555", "type": "work"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "x"}},
    });
    if let Ok(mut doc) = normalize(Resource::User, &user) {
        if apply(Resource::User, &mut doc, &ops).is_ok() {
            if let Ok(again) = normalize(Resource::User, &Value::Object(doc)) {
                let _ = UserSpec::from_doc(again);
            }
        }
    }
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng", "externalId": "g1"});
    if let Ok(mut doc) = normalize(Resource::Group, &group) {
        if apply(Resource::Group, &mut doc, &ops).is_ok() {
            let _ = GroupSpec::from_body(&Value::Object(doc));
        }
    }
    let _ = split_patch(&ops);
});
