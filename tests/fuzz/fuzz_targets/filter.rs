//! SCIM filters and PATCH paths: the parser (bounded depth), the resolution against the
//! User and Group schemas, and the SQL compiler. Besides "no panic, no hang, bounded
//! memory", the compiled SQL must carry every value as a bound parameter: one `?` per bind,
//! and no quoted literal in the text but the compiler's own `''` (values never reach it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use phab_scim::config::Namespace;
use phab_scim::db::{Tables, filter_sql};
use phab_scim::scim::filter::{parse_filter, parse_path};
use phab_scim::scim::query;

fn check(text: &str, binds: usize) {
    assert_eq!(text.matches('?').count(), binds, "{text}");
    // The compiler's own constants are `''` (presence tests); anything else quoted came in.
    let rest = text.replace("''", "");
    assert!(!rest.contains('\'') && !rest.contains('"'), "a literal reached the SQL text: {text}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let _ = parse_path(input);
    let Ok(filter) = parse_filter(input) else { return };
    let t = Tables::new(&Namespace::parse("fuzz").unwrap_or_else(|_| unreachable!()));
    if let Ok(f) = query::resolve_user(&filter) {
        let sql = filter_sql::user_where(&t, &f);
        check(&sql.text, sql.binds.len());
    }
    if let Ok(f) = query::resolve_group(&filter) {
        let sql = filter_sql::group_where(&t, &f);
        check(&sql.text, sql.binds.len());
    }
});
