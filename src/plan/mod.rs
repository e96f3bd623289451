//! The plan language: loading YAML with positions, schema and semantic validation, and expansion into operations.
pub mod resolved;
pub mod schema;
