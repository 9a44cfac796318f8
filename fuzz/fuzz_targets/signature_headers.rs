#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| offboard_fuzzing::signature_headers(data));
