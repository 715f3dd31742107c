#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wsmp_core_fuzz::relay_drivers::relay_packets(data);
});
