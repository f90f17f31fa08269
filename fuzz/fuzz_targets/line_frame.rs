#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| btps_server::internal::fuzzing::line_framing(data));
