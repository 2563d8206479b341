//! Deriving a Phabricator username from a SCIM userName (docs/design.md#usernames,
//! `PhabricatorUser::validateUsername`).
//!
//! Phabricator usernames match `^[a-zA-Z0-9._-]*[a-zA-Z0-9_-]$`, at most 64 bytes, unique
//! case-insensitively. IdPs send email-shaped userNames; the derived name is computed once, at
//! creation, and made unique with a numeric suffix, so a collision never merges two people.

use crate::config::UsernamePolicy;

/// Longest Phabricator username (`MAXIMUM_USERNAME_LENGTH`).
pub const MAX_USERNAME_BYTES: usize = 64;

/// Phabricator's own rule (`PhabricatorUser::validateUsername`).
pub fn is_valid_username(name: &str) -> bool {
    let bytes = name.as_bytes();
    let ok_char = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    !bytes.is_empty()
        && bytes.len() <= MAX_USERNAME_BYTES
        && bytes.iter().all(ok_char)
        && bytes.last().is_some_and(|b| *b != b'.')
}

/// The base name for `user_name` under `policy`: invalid characters become `_` runs are
/// collapsed, the result is trimmed of separators and cut to leave room for a suffix.
pub fn base_username(user_name: &str, policy: UsernamePolicy) -> String {
    let source = match policy {
        UsernamePolicy::LocalPart => user_name.split('@').next().unwrap_or(user_name),
        UsernamePolicy::Full => user_name,
    };
    let mut out = String::with_capacity(source.len());
    for c in source.chars() {
        let mapped = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            c
        } else if c == '@' {
            '.'
        } else {
            '_'
        };
        if mapped == '_' && out.ends_with('_') {
            continue;
        }
        out.push(mapped);
    }
    let trimmed = out.trim_matches(|c| matches!(c, '.' | '_' | '-'));
    let mut name: String = trimmed.chars().take(MAX_USERNAME_BYTES - 4).collect();
    while name.ends_with('.') {
        name.pop();
    }
    if name.is_empty() {
        "user".to_owned()
    } else {
        name
    }
}

/// Candidate `n` (0 = the base itself, then `base2`, `base3`, ...).
pub fn candidate(base: &str, n: u32) -> String {
    if n == 0 {
        base.to_owned()
    } else {
        format!("{base}{}", n + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_valid_names() {
        let p = UsernamePolicy::LocalPart;
        assert_eq!(base_username("jane.doe@example.com", p), "jane.doe");
        assert_eq!(
            base_username("Test_User_00aa00aa-bb11", p),
            "Test_User_00aa00aa-bb11"
        );
        assert_eq!(base_username("José Müller@x.com", p), "Jos_M_ller");
        assert_eq!(base_username("...@x", p), "user");
        assert_eq!(base_username("a@b.c", UsernamePolicy::Full), "a.b.c");
        let long = base_username(&"x".repeat(300), p);
        assert!(long.len() <= 60);
        for s in [
            "jane.doe@example.com",
            "José Müller@x.com",
            "a.@b",
            "-",
            "__x__",
        ] {
            assert!(
                is_valid_username(&candidate(&base_username(s, p), 7)),
                "{s}"
            );
        }
    }

    #[test]
    fn phabricator_rule() {
        assert!(is_valid_username("0"));
        assert!(is_valid_username("-"));
        assert!(!is_valid_username("a."));
        assert!(!is_valid_username("a b"));
        assert!(!is_valid_username(&"a".repeat(65)));
    }
}
