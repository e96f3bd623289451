//! Reports: one model of what a run did, rendered as a terminal table, JSON, JUnit and Markdown,
//! written atomically, and merged across shards.
pub mod convert;
pub mod history;
pub mod model;
pub mod plan;
pub mod plan_diff;
pub mod progress;
pub mod render;
pub mod status;
pub mod undo;
pub mod write;
