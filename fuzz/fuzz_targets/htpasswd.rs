//! htpasswd text: loading never panics; an error names a line inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_perimeter::basic_auth::Users;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Users::from_htpasswd(text) {
        Ok(users) => assert!(users.len() <= text.lines().count() + 1),
        Err(e) => {
            let line = e.line().expect("a parse error names its line");
            assert!(line >= 1 && line <= text.split('\n').count());
        }
    }
});
