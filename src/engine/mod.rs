//! The engine: scheduling operations wave by wave within limits, retries, reconciliation and waiting.
pub mod api;
