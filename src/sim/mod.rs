//! The simulator: a local CCE Autopilot release API with gateway throttling and faults.
