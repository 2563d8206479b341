//! The annotated example configuration (`packaging/phab-scim.toml`, installed by the Debian
//! package as `/etc/phab-scim/phab-scim.toml`) and the README's settings table name every
//! setting the service reads, and the example's values load. No database needed.

use std::collections::BTreeSet;
use std::path::Path;

use phab_scim::config::Config;

const EXAMPLE: &str = include_str!("../../packaging/phab-scim.toml");
const README: &str = include_str!("../../README.md");

/// Every setting as a dotted path (`revoke.sessions`), from the serialized defaults.
fn settings() -> BTreeSet<String> {
    let value = serde_json::to_value(Config::default()).unwrap();
    let mut out = BTreeSet::new();
    for (key, v) in value.as_object().unwrap() {
        match v.as_object() {
            Some(table) => {
                for sub in table.keys() {
                    out.insert(format!("{key}.{sub}"));
                }
            }
            None => {
                out.insert(key.clone());
            }
        }
    }
    out
}

/// The example with every `#key = value` line and `#[table]` header uncommented.
fn uncommented() -> String {
    EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest)
                if rest.starts_with('[') || rest.starts_with(|c: char| c.is_ascii_lowercase()) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The settings the README's table names. Its first column abbreviates siblings:
/// `revoke.sessions` / `.api_tokens` and `deprovision_guard_share` / `_min` / `_window_secs`.
fn readme_settings() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in README.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap_or_default();
        let names: Vec<&str> = cell
            .split(" / ")
            .map(|n| n.trim().trim_matches('`'))
            .collect();
        let Some(first) = names.first() else { continue };
        out.insert((*first).to_owned());
        for n in &names[1..] {
            match n.chars().next() {
                Some(sep @ ('.' | '_')) => {
                    let stem = first.rsplit_once(sep).map_or(*first, |(stem, _)| stem);
                    out.insert(format!("{stem}{n}"));
                }
                _ => {
                    out.insert((*n).to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn the_example_and_the_readme_name_every_setting() {
    let text = uncommented();
    let top_level = text.split("\n[").next().unwrap_or_default();
    let in_readme = readme_settings();
    let mut missing = Vec::new();
    for setting in settings() {
        // In the example: `key =` at the start of a line, under its table's header.
        let (body, key) = match setting.split_once('.') {
            Some((table, key)) => (
                text.split(&format!("\n[{table}]\n"))
                    .nth(1)
                    .unwrap_or_default(),
                key,
            ),
            None => (top_level, setting.as_str()),
        };
        if !body.lines().any(|l| l.starts_with(&format!("{key} ="))) {
            missing.push(format!("packaging/phab-scim.toml: {setting}"));
        }
        if !in_readme.contains(&setting) {
            missing.push(format!("README.md settings table: {setting}"));
        }
    }
    assert!(missing.is_empty(), "not documented: {missing:#?}");
}

#[test]
fn every_setting_of_the_example_loads() {
    let dir = std::env::temp_dir().join(format!("phab-scim-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // phabricator_root's example path does not exist on a test machine.
    let text: String = uncommented()
        .lines()
        .filter(|l| !l.starts_with("phabricator_root"))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = dir.join("all-settings.toml");
    std::fs::write(&file, text).unwrap();
    let loaded = Config::load(Some(Path::new(&file)));
    std::fs::remove_dir_all(&dir).unwrap();
    let cfg = loaded.unwrap_or_else(|e| panic!("the example does not load: {e}"));
    // The uncommented lines are the defaults (or, for settings without one, an example).
    let defaults = Config::default();
    assert_eq!(cfg.pool_size, defaults.pool_size);
    assert_eq!(cfg.max_body_bytes, defaults.max_body_bytes);
    assert_eq!(cfg.drift_interval_secs, defaults.drift_interval_secs);
    assert_eq!(cfg.revoke, defaults.revoke);
    assert_eq!(cfg.trusted_proxies.len(), 2);
}
