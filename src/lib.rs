//! phab-scim: a SCIM 2.0 service provider that provisions Phabricator and Phorge accounts and
//! projects by writing Phabricator's own MySQL tables, the way Phabricator's PHP code would.
//!
//! Layers (docs/design.md#architecture), each using only those below it:
//!
//! - `http/`: routing, authentication and the one mapping of errors to HTTP. It reads requests
//!   with `scim` and acts through `provisioning` and `token`, never through `db` (the sync-log
//!   rows of rejected requests and the readiness check go through `provisioning::service`).
//! - `provisioning/` (one transaction per SCIM operation) and `token` (bearer tokens): the
//!   domain, reading and writing through `db`.
//! - `db/`: all SQL, Phabricator's tables in `db/phabricator/`, the service's own in
//!   `db/sidecar.rs`; it compiles `scim`'s resolved filters (`db::filter_sql`).
//! - `scim/`: pure, used by every layer above: schema, normalisation, filter parser, PATCH
//!   engine, rendering; no I/O.
//!
//! `config`, `net` and `telemetry` serve every layer. `status_gauges` appends the database's
//! view of the deployment to `/metrics`: it reads `db` beside `http/`, not from it, as a
//! middleware `app` adds. `app` and `cli` assemble them.

pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod net;
pub mod provisioning;
pub mod scim;
pub mod status_gauges;
pub mod telemetry;
pub mod token;
