//! `Host` values: parsing never panics, and what it accepts prints back to a
//! value that parses to the same host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_perimeter::https::RequestHost;

fuzz_target!(|data: &[u8]| {
    if let Some(host) = RequestHost::parse_bytes(data) {
        let printed = host.to_string();
        let again = RequestHost::parse(&printed).expect("printed host parses");
        assert_eq!(again.host(), host.host());
        assert_eq!(again.port(), host.port());
    }
});
