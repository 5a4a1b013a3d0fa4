//! Pin strings: parsing never panics, and every spelling of a parsed pin
//! parses back to the same pin.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_perimeter::pinning::Pin;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(pin) = text.parse::<Pin>() {
        for spelling in [pin.to_okhttp(), pin.to_hpkp(), pin.to_curl()] {
            assert_eq!(spelling.parse::<Pin>().expect("printed pin parses"), pin);
        }
    }
});
