//! CSP policy text: parsing never panics; an accepted policy renders to a
//! header value that is one policy (no `,`), and its template parses back to
//! the same rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_perimeter::csp::{CspNonce, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = Policy::parse(text) {
        let nonce = CspNonce::generate();
        let value = policy.header_value(&nonce);
        let rendered = value.to_str().expect("ASCII header");
        assert!(!rendered.contains(','), "{rendered}");
        let again = Policy::parse(&policy.template()).expect("template parses");
        assert_eq!(again.template(), policy.template());
    }
});
