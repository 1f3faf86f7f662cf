#![no_main]
// See fuzz/targets.rs for what this target checks.
#[path = "../targets.rs"]
mod targets;
libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::dataset_filter(data));
