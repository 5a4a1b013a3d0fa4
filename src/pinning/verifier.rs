//! A rustls server-certificate verifier that checks pins.

use std::cell::RefCell;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use webpki::{EndEntityCert, VerifiedPath};
use x509_parser::prelude::{FromDer as _, X509Certificate, X509Name};

use super::error::{ChainCertificate, PinningError, PinningFailure};
use super::pin::COMPONENT;
use super::pin_set::{normalize_host, AfterExpiry, HostPins, PinSet};
use super::Pin;
use crate::ConfigError;

/// A [`ServerCertVerifier`] that checks a [`PinSet`], either on top of CA
/// validation ([`PinnedVerifier::new`]) or instead of it
/// ([`PinnedVerifier::without_ca`]).
///
/// # With CA validation
///
/// The chain is validated by webpki against the given roots, exactly as
/// rustls's own `WebPkiServerVerifier` does (signatures, validity dates, name
/// constraints, `serverAuth` usage, the server name). The pins are then
/// checked against the path **webpki built and trusted**: the leaf, the
/// intermediates it actually used and the trust anchor, which the server need
/// not send. At least one of those keys must match a pin of the host.
///
/// Checking the certificates the server *sent* instead would be a hole: a
/// server with a certificate from any other trusted CA could append the
/// legitimately pinned CA certificate to its chain and pass. Here the
/// appended certificate is not part of any valid path, so it cannot satisfy
/// a pin. When several valid paths exist (cross-signed intermediates), any
/// valid path that contains a pinned key is accepted: path building goes on
/// past a path without one.
///
/// Hosts the pin set does not cover get CA validation alone, as in OkHttp.
///
/// # Instead of CA validation
///
/// For private deployments with self-signed certificates: the leaf must carry
/// the server name (subjectAltName) and be within its validity dates, and its
/// key must be pinned; or a certificate the server sent is pinned and the
/// leaf chains to it with valid signatures and dates. The handshake signature
/// is checked against the leaf's key as always, which proves the server holds
/// the pinned key. Self-signed certificates with `CA:TRUE`, as
/// `openssl req -x509` makes them, work when their own key is pinned. Hosts
/// the pin set does not cover are refused, an expired pin set refuses, and
/// report-only sets are rejected at construction: with nothing else vouching
/// for the server, not enforcing pins would accept anyone.
///
/// # Crypto provider
///
/// The verifier and [`into_client_config`](Self::into_client_config) use
/// rustls's *ring* provider (`rustls::crypto::ring::default_provider()`)
/// explicitly, never the process-wide default, so they work whether or not
/// an application installed a default and do not panic when both ring and
/// aws-lc-rs are compiled in. Use [`with_provider`](Self::with_provider) for
/// another provider (FIPS builds with aws-lc-rs, for example).
///
/// Revocation (CRLs, OCSP) is not checked, as with rustls's default verifier
/// built without CRLs.
#[derive(Clone)]
pub struct PinnedVerifier {
    pins: PinSet,
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    /// Pins on top of CA validation against `roots`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if `roots` is empty.
    pub fn new(pins: PinSet, roots: impl Into<Arc<RootCertStore>>) -> Result<Self, ConfigError> {
        let roots = roots.into();
        if roots.is_empty() {
            return Err(ConfigError::new(
                COMPONENT,
                "the root certificate store is empty; add roots or use PinnedVerifier::without_ca",
            ));
        }
        Ok(Self {
            pins,
            roots: Some(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// Pins instead of CA validation, for self-signed or private-CA servers.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if the pin set is report-only: without CA validation
    /// that would accept any certificate.
    pub fn without_ca(pins: PinSet) -> Result<Self, ConfigError> {
        if pins.report_only {
            return Err(ConfigError::new(
                COMPONENT,
                "a report-only pin set cannot replace CA validation: it would accept any certificate",
            ));
        }
        Ok(Self {
            pins,
            roots: None,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// Uses `provider` for signature verification instead of ring.
    pub fn with_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// The pin set.
    pub fn pin_set(&self) -> &PinSet {
        &self.pins
    }

    /// Whether the verifier validates chains against CA roots.
    pub fn validates_ca(&self) -> bool {
        self.roots.is_some()
    }

    /// A [`ClientConfig`] using this verifier and its provider, with rustls's
    /// safe default protocol versions (TLS 1.3 and 1.2), no client
    /// certificate and no ALPN (hyper-rustls sets ALPN itself).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if the provider supports none of the protocol
    /// versions (not the case for ring).
    pub fn into_client_config(self) -> Result<ClientConfig, ConfigError> {
        let provider = Arc::clone(&self.provider);
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| ConfigError::new(COMPONENT, format!("crypto provider unusable: {err}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth())
    }

    fn fail(&self, err: PinningError, enforce: bool) -> Result<(), rustls::Error> {
        self.pins.report(&err);
        if enforce {
            event!(warn, reason = "pin_mismatch", host = %err.host, "{err}");
            Err(err.into_rustls())
        } else {
            event!(warn, reason = "pin_mismatch_reported", host = %err.host, "report-only: {err}");
            Ok(())
        }
    }

    fn verify_with_ca(
        &self,
        roots: &RootCertStore,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_name(&parsed, server_name)?;
        let algs = self.provider.signature_verification_algorithms.all;
        let host = host_of(server_name);

        let mut enforce = !self.pins.report_only;
        let host_pins = match self.pins.lookup(&host) {
            Some(host_pins) if self.pins.is_expired_at(now.as_secs()) => {
                match self.pins.after_expiry {
                    AfterExpiry::Refuse => {
                        let err = self.error(
                            PinningFailure::Expired,
                            &host,
                            Some(host_pins),
                            vec![],
                            false,
                        );
                        return self.fail(err, true);
                    }
                    AfterExpiry::ReportOnly => {
                        enforce = false;
                        Some(host_pins)
                    }
                    AfterExpiry::Unpinned => {
                        event!(warn, reason = "pins_expired", host = %host, "pin set expired; CA validation only");
                        None
                    }
                }
            }
            other => other,
        };

        let Some(host_pins) = host_pins else {
            return verify_server_cert_signed_by_trust_anchor(
                &parsed,
                roots,
                intermediates,
                now,
                algs,
            );
        };

        let ee = EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        // The first valid path that lacked a pinned key, for the error.
        let unpinned_path: RefCell<Option<Vec<ChainCertificate>>> = RefCell::new(None);
        let check_pins = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            if path_pins(path).any(|pin| host_pins.pins.contains(&pin)) {
                return Ok(());
            }
            let mut slot = unpinned_path.borrow_mut();
            if slot.is_none() {
                *slot = Some(describe_path(path));
            }
            // Any non-fatal error makes webpki try the remaining paths.
            Err(webpki::Error::UnknownIssuer)
        };
        let built = ee.verify_for_usage(
            algs,
            &roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            Some(&check_pins),
        );
        if built.is_ok() {
            return Ok(());
        }
        match unpinned_path.into_inner() {
            // A valid path exists, but none holds a pinned key.
            Some(chain) => {
                let err = self.error(
                    PinningFailure::Mismatch,
                    &host,
                    Some(host_pins),
                    chain,
                    true,
                );
                self.fail(err, enforce)
            }
            // No valid path at all: let rustls name the CA failure the way
            // its own verifier does.
            None => {
                verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    roots,
                    intermediates,
                    now,
                    algs,
                )?;
                // Unreachable in practice (both ran the same validation);
                // refuse rather than accept.
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ))
            }
        }
    }

    fn verify_without_ca(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_name(&parsed, server_name)?;
        let host = host_of(server_name);
        let sent = || {
            std::iter::once(end_entity)
                .chain(intermediates)
                .map(|der| describe_der(der))
                .collect::<Vec<_>>()
        };
        let Some(host_pins) = self.pins.lookup(&host) else {
            let err = self.error(PinningFailure::NoPinsForHost, &host, None, sent(), false);
            return self.fail(err, true);
        };
        if self.pins.is_expired_at(now.as_secs()) {
            let err = self.error(
                PinningFailure::Expired,
                &host,
                Some(host_pins),
                sent(),
                false,
            );
            return self.fail(err, true);
        }

        let leaf_pin = Pin::from_spki_der(parsed.subject_public_key_info().as_ref());
        if host_pins.pins.contains(&leaf_pin) {
            return check_leaf_alone(end_entity, now);
        }

        // A pinned certificate further up the sent chain becomes the trust
        // anchor; the leaf must chain to it with valid signatures and dates.
        let anchors: Vec<TrustAnchor<'static>> = intermediates
            .iter()
            .filter(|der| {
                Pin::from_certificate_der(der.as_ref())
                    .is_ok_and(|pin| host_pins.pins.contains(&pin))
            })
            .filter_map(|der| {
                webpki::anchor_from_trusted_cert(der)
                    .ok()
                    .map(|a| a.to_owned())
            })
            .collect();
        let mismatch = || {
            self.error(
                PinningFailure::Mismatch,
                &host,
                Some(host_pins),
                sent(),
                false,
            )
        };
        // A CA certificate is never accepted as a server certificate through
        // an issuer; only its own pinned key (above) can vouch for it.
        if anchors.is_empty() || is_ca(end_entity) {
            return self.fail(mismatch(), true);
        }
        let store = RootCertStore { roots: anchors };
        let algs = self.provider.signature_verification_algorithms.all;
        match verify_server_cert_signed_by_trust_anchor(&parsed, &store, intermediates, now, algs) {
            // The pinned certificate was sent but does not vouch for the leaf.
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                self.fail(mismatch(), true)
            }
            other => other,
        }
    }

    fn error(
        &self,
        kind: PinningFailure,
        host: &str,
        host_pins: Option<&HostPins>,
        chain: Vec<ChainCertificate>,
        chain_validated: bool,
    ) -> PinningError {
        PinningError {
            kind,
            host: host.to_owned(),
            pattern: host_pins.map(|h| h.pattern.to_string()),
            chain,
            chain_validated,
            pinned: host_pins.map(|h| h.pins.clone()).unwrap_or_default(),
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.roots {
            Some(roots) => self.verify_with_ca(roots, end_entity, intermediates, server_name, now),
            None => self.verify_without_ca(end_entity, intermediates, server_name, now),
        }
        .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl fmt::Debug for PinnedVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedVerifier")
            .field("pins", &self.pins)
            .field("roots", &self.roots.as_ref().map(|r| r.len()))
            .field("validates_ca", &self.roots.is_some())
            .finish_non_exhaustive()
    }
}

/// A `rustls::ClientConfig` that validates against `roots` and checks `pins`,
/// with the ring provider: the one call for hyper-rustls and reqwest
/// (`use_preconfigured_tls`).
///
/// # Errors
///
/// As [`PinnedVerifier::new`].
pub fn client_config(
    pins: PinSet,
    roots: impl Into<Arc<RootCertStore>>,
) -> Result<ClientConfig, ConfigError> {
    PinnedVerifier::new(pins, roots)?.into_client_config()
}

/// A `rustls::ClientConfig` that trusts `pins` instead of CAs (self-signed
/// servers in a private network), with the ring provider.
///
/// # Errors
///
/// As [`PinnedVerifier::without_ca`].
pub fn client_config_without_ca(pins: PinSet) -> Result<ClientConfig, ConfigError> {
    PinnedVerifier::without_ca(pins)?.into_client_config()
}

fn host_of(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => normalize_host(dns.as_ref()),
        ServerName::IpAddress(ip) => IpAddr::from(*ip).to_string(),
        other => other.to_str().into_owned(),
    }
}

/// The pins of every key on a validated path, leaf to anchor.
fn path_pins<'a>(path: &'a VerifiedPath<'a>) -> impl Iterator<Item = Pin> + 'a {
    std::iter::once(Pin::from_spki_der(
        path.end_entity().subject_public_key_info().as_ref(),
    ))
    .chain(
        path.intermediate_certificates()
            .map(|cert| Pin::from_spki_der(cert.subject_public_key_info().as_ref())),
    )
    .chain(std::iter::once(Pin::from_spki_der(
        webpki::spki_for_anchor(path.anchor()).as_ref(),
    )))
}

fn describe_path(path: &VerifiedPath<'_>) -> Vec<ChainCertificate> {
    let mut chain = vec![describe_cert(path.end_entity())];
    chain.extend(path.intermediate_certificates().map(describe_cert));
    let anchor = path.anchor();
    chain.push(ChainCertificate::new(
        format!(
            "{} (trust anchor)",
            name_from_contents(anchor.subject.as_ref())
        ),
        Pin::from_spki_der(webpki::spki_for_anchor(anchor).as_ref()),
    ));
    chain
}

/// A certificate webpki has parsed: the same key bytes it validated.
fn describe_cert(cert: &webpki::Cert<'_>) -> ChainCertificate {
    ChainCertificate::new(
        name_from_contents(cert.subject()),
        Pin::from_spki_der(cert.subject_public_key_info().as_ref()),
    )
}

/// A certificate as sent, which may not parse at all.
fn describe_der(der: &CertificateDer<'_>) -> ChainCertificate {
    match EndEntityCert::try_from(der) {
        Ok(cert) => describe_cert(&cert),
        // No key to pin: label the entry and show the digest of the whole
        // certificate so it can still be told apart from the others.
        Err(_) => ChainCertificate::new(
            "<unparsable certificate; digest of the whole certificate>".to_owned(),
            Pin::from_spki_der(der.as_ref()),
        ),
    }
}

/// Decodes the contents of a DER `Name` (without its `SEQUENCE` header, as
/// webpki keeps trust-anchor subjects).
fn name_from_contents(contents: &[u8]) -> String {
    let mut der = vec![0x30];
    let len = contents.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(contents);
    if contents.is_empty() {
        return "<empty subject>".to_owned();
    }
    match X509Name::from_der(&der) {
        // x509-parser stops at the first bad RDN without failing; a name
        // that decoded to nothing from non-empty bytes is garbage.
        Ok((rest, name)) if rest.is_empty() && name.iter().next().is_some() => {
            sanitize(&name.to_string())
        }
        _ => "<unparsable subject>".to_owned(),
    }
}

/// Subjects come from the peer: escape control characters and bound the
/// length before they reach an error message or a log line.
fn sanitize(subject: &str) -> String {
    let mut out: String = subject
        .chars()
        .take(256)
        .flat_map(char::escape_debug)
        .collect();
    if subject.chars().count() > 256 {
        out.push('…');
    }
    out
}

/// Validity dates and extended key usage of a leaf trusted by its pinned key.
fn check_leaf_alone(end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (_, cert) = X509Certificate::from_der(end_entity.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let unix = |t: i64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.max(0) as u64));
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now_secs < not_before {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: now,
                not_before: unix(not_before),
            },
        ));
    }
    if now_secs > not_after {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: now,
                not_after: unix(not_after),
            },
        ));
    }
    match cert.extended_key_usage() {
        Ok(Some(eku)) if !(eku.value.any || eku.value.server_auth) => Err(
            rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose),
        ),
        Ok(_) => Ok(()),
        Err(_) => Err(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        )),
    }
}

fn is_ca(der: &CertificateDer<'_>) -> bool {
    // Unparsable certificates count as CA certificates: refused.
    X509Certificate::from_der(der.as_ref()).map_or(true, |(_, cert)| cert.is_ca())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_contents(cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().clone();
        let parsed = EndEntityCert::try_from(&der).unwrap();
        parsed.subject().to_vec()
    }

    #[test]
    fn long_subject_names_decode() {
        let cn = "x".repeat(200);
        let contents = subject_contents(&cn);
        assert!(contents.len() > 0x80);
        assert_eq!(name_from_contents(&contents), format!("CN={cn}"));
    }

    #[test]
    fn control_characters_in_subjects_are_escaped() {
        let text = name_from_contents(&subject_contents("evil\nINFO forged line\u{1b}[2J"));
        assert!(!text.contains('\n'), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("\\n"), "{text}");
    }

    #[test]
    fn garbage_name_is_labelled_not_fatal() {
        assert_eq!(name_from_contents(&[0xff, 0x01]), "<unparsable subject>");
        assert_eq!(name_from_contents(&[]), "<empty subject>");
    }

    #[test]
    fn oversized_subjects_are_truncated() {
        let text = sanitize(&"y".repeat(1000));
        assert!(text.chars().count() <= 257);
        assert!(text.ends_with('…'));
    }
}
