#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| btps_fuzz::delegation(data));
