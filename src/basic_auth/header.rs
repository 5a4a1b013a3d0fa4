//! Parsing and encoding of `Basic` credentials ([RFC 7617]).
//!
//! [RFC 7617]: https://www.rfc-editor.org/rfc/rfc7617

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use http::HeaderValue;
use std::fmt;

/// Accepts standard base64 with or without `=` padding, as clients differ.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The default cap on the length of a credential header value, checked before
/// any decoding.
pub const DEFAULT_MAX_HEADER_LEN: usize = 4096;

/// A user name and password taken from a `Basic` credential.
///
/// `Debug` prints the user name and `"<redacted>"` for the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// Credentials made of a user name and a password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The user-id.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The `Basic <base64>` header value for these credentials, for clients
    /// and tests.
    ///
    /// # Errors
    ///
    /// Fails if the user name contains a colon or either part contains a
    /// control character ([RFC 7617 section 2]).
    ///
    /// [RFC 7617 section 2]: https://www.rfc-editor.org/rfc/rfc7617#section-2
    pub fn to_header_value(&self) -> Result<HeaderValue, ParseError> {
        if self.user.contains(':') {
            return Err(ParseError::ColonInUser);
        }
        if has_control(&self.user) || has_control(&self.password) {
            return Err(ParseError::ControlCharacter);
        }
        let encoded = STANDARD.encode(format!("{}:{}", self.user, self.password));
        let mut value =
            HeaderValue::try_from(format!("Basic {encoded}")).map_err(|_| ParseError::NotBase64)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a credential header could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The header value is longer than the configured cap.
    TooLong,
    /// The scheme is not `Basic`, or the value has no credentials after it.
    NotBasic,
    /// The credentials are not valid base64.
    NotBase64,
    /// The decoded credentials are not UTF-8.
    NotUtf8,
    /// The decoded credentials have no `:` between user-id and password.
    NoColon,
    /// A user name that contains a colon (only for encoding).
    ColonInUser,
    /// The user-id is empty.
    EmptyUser,
    /// The user-id or password contains a control character.
    ControlCharacter,
}

impl ParseError {
    /// A short, stable code for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLong => "too_long",
            Self::NotBasic => "not_basic",
            Self::NotBase64 => "not_base64",
            Self::NotUtf8 => "not_utf8",
            Self::NoColon => "no_colon",
            Self::ColonInUser => "colon_in_user",
            Self::EmptyUser => "empty_user",
            Self::ControlCharacter => "control_character",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ParseError {}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Parses an `Authorization` (or `Proxy-Authorization`) header value holding
/// `Basic` credentials.
///
/// The scheme is matched case-insensitively and any amount of spaces may
/// separate it from the credentials ([RFC 9110 section 11.4]). The value is
/// rejected before decoding if it is longer than `max_len` bytes. The decoded
/// credentials must be UTF-8 (the `charset="UTF-8"` this crate announces), must
/// contain a colon, must have a non-empty user-id, and must not contain
/// control characters ([RFC 7617 section 2]).
///
/// ```
/// use tower_perimeter::basic_auth::{parse_basic, ParseError};
///
/// let creds = parse_basic(b"bAsIc   ZGVtbzpzZWNyZXQ=", 4096).unwrap();
/// assert_eq!((creds.user(), creds.password()), ("demo", "secret"));
/// assert_eq!(parse_basic(b"Bearer abc", 4096), Err(ParseError::NotBasic));
/// ```
///
/// # Errors
///
/// Returns the [`ParseError`] that names the first problem found.
///
/// [RFC 9110 section 11.4]: https://www.rfc-editor.org/rfc/rfc9110#section-11.4
/// [RFC 7617 section 2]: https://www.rfc-editor.org/rfc/rfc7617#section-2
pub fn parse_basic(value: &[u8], max_len: usize) -> Result<Credentials, ParseError> {
    let mut buf = vec![0u8; value.len().min(max_len) / 4 * 3 + 3];
    parse_basic_in(value, max_len, &mut buf).map(|(u, p)| Credentials::new(u, p))
}

/// The longest header value the layer can be configured to accept.
pub(crate) const MAX_HEADER_LEN_LIMIT: usize = 8192;

/// The largest decoded credential of a header within [`MAX_HEADER_LEN_LIMIT`].
pub(crate) const MAX_DECODED: usize = MAX_HEADER_LEN_LIMIT / 4 * 3 + 3;

/// [`parse_basic`] without allocating: decodes into `buf` and borrows the
/// user-id and password from it. A value whose decoded form does not fit in
/// `buf` is [`ParseError::TooLong`].
pub(crate) fn parse_basic_in<'b>(
    value: &[u8],
    max_len: usize,
    buf: &'b mut [u8],
) -> Result<(&'b str, &'b str), ParseError> {
    if value.len() > max_len {
        return Err(ParseError::TooLong);
    }
    let value = trim_ows(value);
    let split = value
        .iter()
        .position(|b| is_ows(*b))
        .ok_or(ParseError::NotBasic)?;
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(ParseError::NotBasic);
    }
    let token = trim_ows(rest);
    if token.is_empty() {
        return Err(ParseError::NotBasic);
    }
    if token.len() / 4 * 3 + 3 > buf.len() {
        return Err(ParseError::TooLong);
    }
    let n = LENIENT
        .decode_slice(token, buf)
        .map_err(|_| ParseError::NotBase64)?;
    let decoded = std::str::from_utf8(&buf[..n]).map_err(|_| ParseError::NotUtf8)?;
    let (user, password) = decoded.split_once(':').ok_or(ParseError::NoColon)?;
    if user.is_empty() {
        return Err(ParseError::EmptyUser);
    }
    if has_control(user) || has_control(password) {
        return Err(ParseError::ControlCharacter);
    }
    Ok((user, password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(raw: &[u8]) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(raw)).into_bytes()
    }

    #[test]
    fn well_formed_credentials_are_parsed() {
        let c = parse_basic(&encode(b"demo:s3cret"), 4096).unwrap();
        assert_eq!(c.user(), "demo");
        assert_eq!(c.password(), "s3cret");
    }

    #[test]
    fn lowercase_scheme_is_accepted() {
        let v = format!("basic {}", STANDARD.encode("a:b"));
        assert_eq!(parse_basic(v.as_bytes(), 4096).unwrap().user(), "a");
    }

    #[test]
    fn extra_spaces_and_tabs_are_accepted() {
        let v = format!("  BASIC \t  {}  ", STANDARD.encode("a:b"));
        assert_eq!(parse_basic(v.as_bytes(), 4096).unwrap().password(), "b");
    }

    #[test]
    fn missing_padding_is_accepted() {
        // "a:bc" encodes to "YTpiYw==".
        assert_eq!(parse_basic(b"Basic YTpiYw", 4096).unwrap().password(), "bc");
    }

    #[test]
    fn password_may_contain_colons() {
        let c = parse_basic(&encode(b"u:p:a:ss"), 4096).unwrap();
        assert_eq!(c.password(), "p:a:ss");
    }

    #[test]
    fn empty_password_is_allowed_by_the_parser() {
        assert_eq!(parse_basic(&encode(b"u:"), 4096).unwrap().password(), "");
    }

    #[test]
    fn missing_colon_is_rejected() {
        assert_eq!(
            parse_basic(&encode(b"nocolon"), 4096),
            Err(ParseError::NoColon)
        );
    }

    #[test]
    fn empty_user_is_rejected() {
        assert_eq!(
            parse_basic(&encode(b":pw"), 4096),
            Err(ParseError::EmptyUser)
        );
    }

    #[test]
    fn non_utf8_credentials_are_rejected() {
        assert_eq!(
            parse_basic(&encode(b"us\xffer:pw"), 4096),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn control_characters_are_rejected() {
        assert_eq!(
            parse_basic(&encode(b"us\ner:pw"), 4096),
            Err(ParseError::ControlCharacter)
        );
        assert_eq!(
            parse_basic(&encode(b"user:p\x00w"), 4096),
            Err(ParseError::ControlCharacter)
        );
    }

    #[test]
    fn other_schemes_are_rejected() {
        assert_eq!(parse_basic(b"Bearer abc", 4096), Err(ParseError::NotBasic));
        assert_eq!(parse_basic(b"Basicabc", 4096), Err(ParseError::NotBasic));
        assert_eq!(parse_basic(b"Basic", 4096), Err(ParseError::NotBasic));
        assert_eq!(parse_basic(b"Basic    ", 4096), Err(ParseError::NotBasic));
        assert_eq!(parse_basic(b"", 4096), Err(ParseError::NotBasic));
    }

    #[test]
    fn invalid_base64_is_rejected() {
        assert_eq!(parse_basic(b"Basic !!!!", 4096), Err(ParseError::NotBase64));
        assert_eq!(
            parse_basic(b"Basic YTpi Yw==", 4096),
            Err(ParseError::NotBase64)
        );
    }

    #[test]
    fn overlong_value_is_rejected_before_decoding() {
        let v = encode(&vec![b'a'; 5000]);
        assert_eq!(parse_basic(&v, 4096), Err(ParseError::TooLong));
    }

    #[test]
    fn debug_redacts_password() {
        let c = Credentials::new("demo", "hunter2");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("demo"));
        assert!(!dbg.contains("hunter2"));
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn header_value_is_marked_sensitive() {
        let v = Credentials::new("a", "b").to_header_value().unwrap();
        assert!(v.is_sensitive());
        assert!(Credentials::new("a:b", "c").to_header_value().is_err());
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_basic(&bytes, 512);
        }

        #[test]
        fn parser_never_panics_on_basic_prefix(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut v = b"Basic ".to_vec();
            v.extend(tail);
            let _ = parse_basic(&v, 4096);
        }

        #[test]
        fn encode_then_parse_round_trips(
            user in "[^:\\p{Cc}]{1,40}",
            password in "[^\\p{Cc}]{0,60}",
        ) {
            let creds = Credentials::new(user.clone(), password.clone());
            let value = creds.to_header_value().unwrap();
            let parsed = parse_basic(value.as_bytes(), 4096).unwrap();
            prop_assert_eq!(parsed.user(), user.as_str());
            prop_assert_eq!(parsed.password(), password.as_str());
        }
    }
}
