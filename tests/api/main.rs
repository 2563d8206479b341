//! Integration tests: the service in-process against a real MariaDB, each test in its own
//! Phabricator storage namespace (`t_<hex epoch>_<random>`), dropped at the end.

// Test code may panic: a failed unwrap is a failed test. (clippy.toml's allow-*-in-tests only
// covers `#[test]` functions, not the fixture and helpers of an integration test binary.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod bulk;
mod cli;
mod drift;
mod emails;
mod example_config;
mod groups;
mod guard;
mod helpers;
mod hostile;
mod invariants;
mod lifecycle;
mod logging;
mod metrics;
mod protocol;
mod races;
mod readiness;
mod schema;
mod security;
mod staged;
mod status;
mod takeover;
mod timeouts;
mod unauthenticated;
mod users;
mod value_filters;
