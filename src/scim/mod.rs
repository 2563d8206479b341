//! The SCIM protocol, pure: schemas, resources, filters, PATCH. No IO here.

pub mod bulk;
pub mod error;
pub mod filter;
pub mod group;
pub mod list;
pub mod patch;
pub mod query;
pub mod resource;
pub mod schema;
pub mod user;

pub use error::{ScimError, ScimType};
