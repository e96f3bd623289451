//! libFuzzer entry point for `flotilla_fuzz::plan_load`; the checks live in the library so that
//! `tests/it/fuzz_regressions.rs` replays saved inputs through exactly the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = flotilla_fuzz::plan_load(data, flotilla_fuzz::PLAN_LOAD_LIMIT);
});
