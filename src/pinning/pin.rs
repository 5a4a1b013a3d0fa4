//! The pin itself: a SHA-256 digest of a SubjectPublicKeyInfo.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::ConfigError;

pub(crate) const COMPONENT: &str = "pinning";

/// Length of a SHA-256 digest in padded base64.
const B64_LEN: usize = 44;

/// A public-key pin: the SHA-256 digest of a DER-encoded
/// SubjectPublicKeyInfo, as defined by [RFC 7469 section 2.4].
///
/// A pin names a key, not a certificate, so it survives certificate renewals
/// that keep the key. It parses from and prints to the three common spellings:
///
/// | spelling | used by | method |
/// |---|---|---|
/// | `sha256/BASE64` | OkHttp, Android | [`Display`](fmt::Display), [`Pin::to_okhttp`] |
/// | `pin-sha256="BASE64"` | HPKP ([RFC 7469]) | [`Pin::to_hpkp`] |
/// | `sha256//BASE64` | curl `--pinnedpubkey` | [`Pin::to_curl`] |
///
/// ```
/// use tower_perimeter::pinning::Pin;
///
/// let pin: Pin = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".parse()?;
/// assert_eq!(pin, "pin-sha256=\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"".parse()?);
/// assert_eq!(pin, "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".parse()?);
/// assert_eq!(pin.to_curl(), "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
///
/// [RFC 7469 section 2.4]: https://www.rfc-editor.org/rfc/rfc7469#section-2.4
/// [RFC 7469]: https://www.rfc-editor.org/rfc/rfc7469
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pin([u8; 32]);

impl Pin {
    /// The pin of a raw 32-byte SHA-256 digest.
    pub const fn from_sha256(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The pin of a DER-encoded SubjectPublicKeyInfo (the whole `SEQUENCE`,
    /// as `openssl pkey -pubin -outform der` writes it).
    pub fn from_spki_der(spki: &[u8]) -> Self {
        Self(Sha256::digest(spki).into())
    }

    /// The pin of the public key in a DER-encoded X.509 certificate.
    ///
    /// This is the value to publish for a server: a gateway can print the pin
    /// of its own certificate at start-up so clients can configure it.
    ///
    /// ```
    /// use tower_perimeter::pinning::Pin;
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// # let der: &[u8] = cert.cert.der();
    /// let pin = Pin::from_certificate_der(der)?;
    /// println!("clients pin this server with {pin}");
    /// # Ok::<(), tower_perimeter::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if `der` is not a DER-encoded X.509 certificate.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, ConfigError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|err| {
            ConfigError::new(COMPONENT, format!("not a DER X.509 certificate: {err}"))
        })?;
        if !rest.is_empty() {
            return Err(ConfigError::new(
                COMPONENT,
                "not a DER X.509 certificate: trailing data after the certificate",
            ));
        }
        Ok(Self::from_spki_der(cert.public_key().raw))
    }

    /// The 32 digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest in standard base64 with padding (44 characters).
    pub fn base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The OkHttp spelling, `sha256/BASE64` (also what [`Display`](fmt::Display) prints).
    pub fn to_okhttp(&self) -> String {
        format!("sha256/{}", self.base64())
    }

    /// The HPKP spelling ([RFC 7469](https://www.rfc-editor.org/rfc/rfc7469#section-2.1.1)),
    /// `pin-sha256="BASE64"`.
    pub fn to_hpkp(&self) -> String {
        format!("pin-sha256=\"{}\"", self.base64())
    }

    /// The curl spelling (`CURLOPT_PINNEDPUBLICKEY`), `sha256//BASE64`.
    pub fn to_curl(&self) -> String {
        format!("sha256//{}", self.base64())
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256/{}", self.base64())
    }
}

// A pin is a public value (it is printed by servers and shipped in clients),
// so Debug shows it in full.
impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

impl FromStr for Pin {
    type Err = ConfigError;

    /// Parses `sha256/BASE64`, `sha256//BASE64` or `pin-sha256="BASE64"`.
    /// Surrounding whitespace is ignored; the algorithm name is
    /// case-insensitive; the base64 must be standard, padded and decode to
    /// exactly 32 bytes.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let b64 = if let Some(rest) = strip_prefix_ci(s, "pin-sha256=") {
            rest.strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .ok_or_else(|| {
                    pin_error(input, "an HPKP pin must be quoted: pin-sha256=\"BASE64\"")
                })?
        } else if let Some(rest) = strip_prefix_ci(s, "sha256/") {
            // `sha256//X` is curl's spelling, but also OkHttp's when the
            // base64 starts with '/'. A digest is exactly 44 base64
            // characters, so the length tells them apart.
            match rest.strip_prefix('/') {
                Some(curl) if rest.len() == B64_LEN + 1 => curl,
                _ => rest,
            }
        } else {
            return Err(pin_error(
                input,
                "expected sha256/BASE64, sha256//BASE64 or pin-sha256=\"BASE64\"",
            ));
        };
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| pin_error(input, "the digest is not valid padded base64"))?;
        let digest: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            pin_error(
                input,
                format!(
                    "a SHA-256 digest has 32 bytes, this one has {}",
                    bytes.len()
                ),
            )
        })?;
        Ok(Self(digest))
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn pin_error(input: &str, why: impl fmt::Display) -> ConfigError {
    // Pins are public values, but the input may be anything; show a bounded,
    // escaped prefix of it.
    let shown: String = input
        .chars()
        .take(80)
        .flat_map(char::escape_debug)
        .collect();
    ConfigError::new(COMPONENT, format!("invalid pin \"{shown}\": {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256 of the empty string, a well-known digest.
    const EMPTY: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn three_spellings_parse_to_the_same_pin() {
        let a: Pin = format!("sha256/{EMPTY}").parse().unwrap();
        let b: Pin = format!("pin-sha256=\"{EMPTY}\"").parse().unwrap();
        let c: Pin = format!("sha256//{EMPTY}").parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a, Pin::from_spki_der(b""));
    }

    #[test]
    fn algorithm_name_is_case_insensitive_and_whitespace_trimmed() {
        let a: Pin = format!("  SHA256/{EMPTY}\n").parse().unwrap();
        let b: Pin = format!("PIN-SHA256=\"{EMPTY}\"").parse().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn printing_uses_each_spelling() {
        let pin = Pin::from_spki_der(b"");
        assert_eq!(pin.to_string(), format!("sha256/{EMPTY}"));
        assert_eq!(pin.to_okhttp(), format!("sha256/{EMPTY}"));
        assert_eq!(pin.to_hpkp(), format!("pin-sha256=\"{EMPTY}\""));
        assert_eq!(pin.to_curl(), format!("sha256//{EMPTY}"));
        assert_eq!(format!("{pin:?}"), format!("Pin(sha256/{EMPTY})"));
    }

    #[test]
    fn okhttp_pin_starting_with_slash_is_not_mistaken_for_curl() {
        let pin = Pin::from_sha256([0xff; 32]);
        assert!(pin.base64().starts_with('/'));
        assert_eq!(pin.to_okhttp().parse::<Pin>().unwrap(), pin);
        assert_eq!(pin.to_curl().parse::<Pin>().unwrap(), pin);
    }

    #[test]
    fn sha1_pins_are_rejected() {
        let err = "sha1/2jmj7l5rSw0yVb/vlWAYkK/YBwk="
            .parse::<Pin>()
            .unwrap_err();
        assert!(err.message().contains("expected sha256/"), "{err}");
    }

    #[test]
    fn short_digest_is_rejected_with_its_length() {
        let err = "sha256/2jmj7l5rSw0yVb/vlWAYkK/YBwk="
            .parse::<Pin>()
            .unwrap_err();
        assert!(err.message().contains("has 20"), "{err}");
    }

    #[test]
    fn unquoted_hpkp_pin_is_rejected() {
        let err = format!("pin-sha256={EMPTY}").parse::<Pin>().unwrap_err();
        assert!(err.message().contains("quoted"), "{err}");
    }

    #[test]
    fn unpadded_or_url_safe_base64_is_rejected() {
        assert!(format!("sha256/{}", EMPTY.trim_end_matches('='))
            .parse::<Pin>()
            .is_err());
        assert!(format!("sha256/{}", EMPTY.replace('+', "-"))
            .parse::<Pin>()
            .is_err());
    }

    #[test]
    fn error_escapes_control_characters() {
        let err = "sha256/\u{1b}[31m".parse::<Pin>().unwrap_err();
        assert!(!err.to_string().contains('\u{1b}'));
    }

    #[test]
    fn garbage_certificate_is_a_config_error() {
        let err = Pin::from_certificate_der(b"\x30\x03abc").unwrap_err();
        assert_eq!(err.component(), "pinning");
    }
}
