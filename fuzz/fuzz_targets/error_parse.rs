//! libFuzzer entry point for `flotilla_fuzz::error_parse`; the checks live in the library so that
//! `tests/it/fuzz_regressions.rs` replays saved inputs through exactly the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flotilla_fuzz::error_parse(data));
