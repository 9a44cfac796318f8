#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| offboard_fuzzing::crm_responses(data));
