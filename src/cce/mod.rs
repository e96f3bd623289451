//! The CCE Autopilot API: the client, addresses, endpoints, headers, signing, credentials, errors.
pub mod address;
pub mod client;
pub mod credentials;
pub mod diff;
pub mod endpoint;
pub mod error;
pub mod headers;
pub mod iam;
pub mod model;
pub mod region;
pub mod sign;
pub mod transport;
