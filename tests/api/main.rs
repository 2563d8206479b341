//! Integration tests: the service in-process against a real MariaDB, each test in its own
//! Phabricator storage namespace (`t_<hex epoch>_<random>`), dropped at the end.

mod auth;
mod helpers;
mod lifecycle;
mod schema;
mod users;
