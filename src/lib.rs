//! phab-scim: a SCIM 2.0 service provider that provisions Phabricator and Phorge accounts and
//! projects by writing Phabricator's own MySQL tables, the way Phabricator's PHP code would.
//!
//! Layers (docs/design.md#architecture): `http -> scim -> provisioning -> db`. `scim/` is pure,
//! SQL lives only in `db/`.

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
