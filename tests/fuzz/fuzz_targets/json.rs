//! The JSON readers of request bodies: resource normalisation (User, Group), the User and
//! Group specs, and the SearchRequest reader. serde_json's recursion limit (128) bounds the
//! parse; everything after it walks the tree it produced.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phab_scim::scim::group::GroupSpec;
use phab_scim::scim::list::ListParams;
use phab_scim::scim::resource::normalize;
use phab_scim::scim::schema::Resource;
use phab_scim::scim::user::UserSpec;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(doc) = normalize(Resource::User, &body) {
        let _ = UserSpec::from_doc(doc);
    }
    if let Ok(doc) = normalize(Resource::Group, &body) {
        let _ = GroupSpec::from_doc(doc);
    }
    let _ = GroupSpec::from_body(&body);
    if let Ok(p) = ListParams::from_search_body(&body) {
        let _ = p.page(100, 1000);
        let _ = p.descending();
    }
});
