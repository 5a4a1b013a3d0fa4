//! The typed error of a pinning failure, in the style of OkHttp's
//! `SSLPeerUnverifiedException: Certificate pinning failure!`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use super::Pin;

/// Why a handshake failed the pin check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinningFailure {
    /// No key in the chain matches a configured pin.
    Mismatch,
    /// The pin set has expired and is configured with
    /// [`AfterExpiry::Refuse`](super::AfterExpiry::Refuse), or it is used
    /// without CA validation, where an expired pin set always refuses.
    Expired,
    /// The verifier works without CA validation and no pin set covers the
    /// host, so nothing could vouch for the server.
    NoPinsForHost,
}

/// One certificate of a chain as the error shows it: its subject and the pin
/// of its public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainCertificate {
    subject: String,
    pin: Pin,
}

impl ChainCertificate {
    pub(crate) fn new(subject: String, pin: Pin) -> Self {
        Self { subject, pin }
    }

    /// The subject distinguished name (RFC 4514 style, control characters
    /// escaped; `<unparsable subject>` if it could not be decoded).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The pin of the certificate's public key.
    pub fn pin(&self) -> Pin {
        self.pin
    }
}

/// A certificate pinning failure.
///
/// The verifier returns it inside rustls's error as
/// `rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(..)))`,
/// so rustls sends a `bad_certificate` alert and the error surfaces through
/// tokio-rustls, hyper-rustls and reqwest as the source of an `io::Error`.
/// [`PinningError::find`] digs it out of any of those.
///
/// Its [`Display`](fmt::Display) names the host, every certificate of the
/// chain with its subject and pin, and the configured pins, so the message
/// alone tells an operator which pin to add:
///
/// ```text
/// certificate pinning failure for api.example.com
///   validated chain:
///     sha256/8Rw90Ej3Ttt8RRkrg+WYDS9n7IS03bk5bjP/UXPtaY8=: CN=api.example.com
///     sha256/YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg=: CN=Example Issuing CA
///     sha256/Vjs8r4z+80wjNcr1YKepWQboSIRi63WsWXhIMN+eWys=: CN=Example Root CA (trust anchor)
///   pinned public keys for api.example.com (pattern *.example.com):
///     sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
///     sha256/BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinningError {
    pub(crate) kind: PinningFailure,
    pub(crate) host: String,
    pub(crate) pattern: Option<String>,
    pub(crate) chain: Vec<ChainCertificate>,
    pub(crate) chain_validated: bool,
    pub(crate) pinned: Vec<Pin>,
}

impl PinningError {
    /// What went wrong.
    pub fn kind(&self) -> PinningFailure {
        self.kind
    }

    /// The server name the client connected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host pattern whose pins applied (`None` when no pattern matched).
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_deref()
    }

    /// The certificates the pins were checked against, leaf first.
    ///
    /// With CA validation this is the path the validator built and trusted,
    /// ending in the trust anchor (which the server may not have sent).
    /// Without CA validation it is the chain as the server sent it.
    pub fn chain(&self) -> &[ChainCertificate] {
        &self.chain
    }

    /// Whether [`chain`](Self::chain) is a validated path (`true`) or the
    /// chain as sent (`false`).
    pub fn chain_is_validated(&self) -> bool {
        self.chain_validated
    }

    /// The configured pins for the host.
    pub fn pinned(&self) -> &[Pin] {
        &self.pinned
    }

    /// Finds a `PinningError` in an error and its sources: a rustls
    /// [`Error`](rustls::Error), an [`io::Error`](std::io::Error) from
    /// tokio-rustls, a hyper or hyper-util client error, a reqwest error.
    ///
    /// ```no_run
    /// # async fn f(client: hyper_util::client::legacy::Client<
    /// #     hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    /// #     http_body_util::Empty<bytes::Bytes>>) {
    /// use tower_perimeter::pinning::PinningError;
    ///
    /// let uri = "https://api.example.com/".parse().unwrap();
    /// if let Err(err) = client.get(uri).await {
    ///     if let Some(pinning) = PinningError::find(&err) {
    ///         eprintln!("{pinning}");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a PinningError> {
        let mut current: Option<&'a (dyn StdError + 'static)> = Some(err);
        // Error chains are short; the bound only guards against a cyclic
        // `source` implementation somewhere in a dependency.
        for _ in 0..32 {
            let err = current?;
            if let Some(found) = err.downcast_ref::<PinningError>() {
                return Some(found);
            }
            if let Some(found) = err
                .downcast_ref::<rustls::Error>()
                .and_then(Self::from_rustls)
            {
                return Some(found);
            }
            if let Some(found) = err
                .downcast_ref::<rustls::OtherError>()
                .and_then(from_other)
            {
                return Some(found);
            }
            // `io::Error::source` skips the wrapped error itself, so look
            // inside explicitly.
            if let Some(inner) = err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                if let Some(found) = Self::find(inner) {
                    return Some(found);
                }
            }
            current = err.source();
        }
        None
    }

    /// The `PinningError` inside a rustls error, if that is what it is.
    pub fn from_rustls(err: &rustls::Error) -> Option<&PinningError> {
        match err {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            | rustls::Error::Other(other) => from_other(other),
            _ => None,
        }
    }

    pub(crate) fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(self),
        )))
    }
}

fn from_other(other: &rustls::OtherError) -> Option<&PinningError> {
    other.0.downcast_ref::<PinningError>()
}

impl fmt::Display for PinningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PinningFailure::Mismatch => write!(f, "certificate pinning failure for {}", self.host)?,
            PinningFailure::Expired => write!(
                f,
                "certificate pinning failure for {}: the pin set has expired and refuses connections",
                self.host
            )?,
            PinningFailure::NoPinsForHost => write!(
                f,
                "certificate pinning failure for {}: no pins are configured for this host and CA validation is off",
                self.host
            )?,
        }
        if !self.chain.is_empty() {
            let which = if self.chain_validated {
                "validated chain"
            } else {
                "chain as sent by the server (not CA-validated)"
            };
            write!(f, "\n  {which}:")?;
            for cert in &self.chain {
                write!(f, "\n    {}: {}", cert.pin, cert.subject)?;
            }
        }
        match &self.pattern {
            Some(pattern) if pattern != &self.host => write!(
                f,
                "\n  pinned public keys for {} (pattern {pattern}):",
                self.host
            )?,
            _ => write!(f, "\n  pinned public keys for {}:", self.host)?,
        }
        if self.pinned.is_empty() {
            write!(f, "\n    (none)")?;
        }
        for pin in &self.pinned {
            write!(f, "\n    {pin}")?;
        }
        Ok(())
    }
}

impl StdError for PinningError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PinningError {
        PinningError {
            kind: PinningFailure::Mismatch,
            host: "api.example.com".into(),
            pattern: Some("*.example.com".into()),
            chain: vec![
                ChainCertificate::new("CN=api.example.com".into(), Pin::from_sha256([1; 32])),
                ChainCertificate::new("CN=Root".into(), Pin::from_sha256([2; 32])),
            ],
            chain_validated: true,
            pinned: vec![Pin::from_sha256([3; 32]), Pin::from_sha256([4; 32])],
        }
    }

    #[test]
    fn display_lists_host_chain_and_pins() {
        let text = sample().to_string();
        assert!(text.starts_with("certificate pinning failure for api.example.com\n"));
        assert!(text.contains("validated chain:"));
        assert!(text.contains(&format!(
            "{}: CN=api.example.com",
            Pin::from_sha256([1; 32])
        )));
        assert!(text.contains(&format!("{}: CN=Root", Pin::from_sha256([2; 32]))));
        assert!(text.contains("pattern *.example.com"));
        assert!(text.contains(&Pin::from_sha256([3; 32]).to_string()));
        assert!(text.contains(&Pin::from_sha256([4; 32]).to_string()));
    }

    #[test]
    fn found_through_rustls_and_io_errors() {
        let rustls_err = sample().into_rustls();
        assert_eq!(PinningError::from_rustls(&rustls_err), Some(&sample()));
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        assert_eq!(PinningError::find(&io), Some(&sample()));
        let unrelated = std::io::Error::other("nope");
        assert_eq!(PinningError::find(&unrelated), None);
    }
}
