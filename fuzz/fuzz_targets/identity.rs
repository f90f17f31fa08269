#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| btps_types::internal::fuzzing::identity(data));
