//! Integration tests: the service in-process against a real MariaDB, each test in its own
//! Phabricator storage namespace (`t_<hex epoch>_<random>`), dropped at the end.

mod groups;
mod helpers;
mod users;
