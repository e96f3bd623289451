//! Every integration test, in one binary: one link of the library and its dependencies
//! instead of one per file. Each module is one theme; `e2e_support` runs the real binary
//! against the simulator, `sim_support` talks to the simulator directly.

mod answer_shapes;
mod apply_exit_codes;
mod apply_faults;
mod apply_limits;
mod apply_outputs;
mod apply_resume;
mod apply_signals;
mod apply_waves;
mod cce_client;
mod cce_sign;
mod ci_recipes;
mod converge;
mod docs_commands;
mod docs_links;
mod e2e_support;
mod error_shapes;
mod fuzz_regressions;
mod iam_discovery;
mod journal_format;
mod journal_report;
mod layers;
mod null_fields;
mod plan_cli;
mod plan_load;
mod plan_schema;
mod properties;
mod rehearsal;
mod report_render;
mod report_truth;
mod secrets_masked;
mod sim_api;
mod sim_auth;
mod sim_cli;
mod sim_faults;
mod sim_store;
mod sim_support;
mod status_cli;
mod streams;
mod terminal_safety;
mod undo;
mod wave_gates;
