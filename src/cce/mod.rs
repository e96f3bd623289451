//! The CCE Autopilot API client: models, endpoints, signing, credentials, errors.
pub mod address;
pub mod client;
pub mod credentials;
pub mod diff;
pub mod error;
pub mod model;
pub mod region;
pub mod sign;
