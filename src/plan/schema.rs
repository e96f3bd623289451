//! The plan's JSON Schema, embedded in the binary: the single source of truth for the plan's shape.

pub const SCHEMA_TEXT: &str = include_str!("../../schema/plan.schema.json");
