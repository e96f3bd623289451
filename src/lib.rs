//! flotilla: upgrade and roll back Helm releases across a fleet of CCE Autopilot clusters.
//!
//! The layers, what each module owns and the flow of one operation: `ARCHITECTURE.md` at the
//! top of the repository.
pub mod atomic_file;
pub mod cce;
pub mod cli;
pub mod engine;
pub mod error;
pub mod journal;
pub mod plan;
pub mod report;
pub mod secret;
pub mod sim;
pub mod terminal;
