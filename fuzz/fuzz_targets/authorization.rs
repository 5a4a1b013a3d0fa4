//! `Authorization` values: the parser never panics, and anything it accepts
//! encodes back to credentials that parse the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_perimeter::basic_auth::parse_basic;

fuzz_target!(|data: &[u8]| {
    if let Ok(creds) = parse_basic(data, 4096) {
        let value = creds.to_header_value().expect("parsed credentials re-encode");
        let again = parse_basic(value.as_bytes(), 8192).expect("re-encoded credentials parse");
        assert_eq!(again, creds);
    }
});
