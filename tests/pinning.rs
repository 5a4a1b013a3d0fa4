//! End-to-end tests of certificate pinning: certificates generated with rcgen,
//! a tokio-rustls server on 127.0.0.1, and hyper-rustls / tokio-rustls clients
//! configured by the crate.
#![cfg(feature = "pinning")]

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tower_perimeter::pinning::{
    self, AfterExpiry, Pin, PinSet, PinnedVerifier, PinningError, PinningFailure,
};

mod common;

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn pin(&self) -> Pin {
        Pin::from_certificate_der(self.cert.der()).unwrap()
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "Pinning Tests");
    dn
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn root(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(cn).self_signed(&key).unwrap();
    Ca { cert, key }
}

fn intermediate(cn: &str, issuer: &Ca) -> Ca {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(cn)
        .signed_by(&key, &issuer.cert, &issuer.key)
        .unwrap();
    Ca { cert, key }
}

/// The same intermediate key and subject, certified by another issuer.
fn cross_sign(int: &Ca, cn: &str, issuer: &Ca) -> rcgen::Certificate {
    ca_params(cn)
        .signed_by(&int.key, &issuer.cert, &issuer.key)
        .unwrap()
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = dn(names[0]);
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Leaf {
    fn pin(&self) -> Pin {
        Pin::from_certificate_der(self.cert.der()).unwrap()
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key.serialize_der()).into()
    }
}

fn leaf(names: &[&str], issuer: &Ca) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(names)
        .signed_by(&key, &issuer.cert, &issuer.key)
        .unwrap();
    Leaf { cert, key }
}

/// A self-signed server certificate with `CA:TRUE`, as `openssl req -x509`
/// makes them.
fn self_signed_ca_true(names: &[&str]) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params = leaf_params(names);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![];
    let cert = params.self_signed(&key).unwrap();
    Leaf { cert, key }
}

/// The legitimate PKI: root -> issuing CA -> leaf for localhost.
struct Pki {
    root: Ca,
    int: Ca,
    leaf: Leaf,
}

fn pki() -> Pki {
    let root = root("Legit Root CA");
    let int = intermediate("Legit Issuing CA", &root);
    let leaf = leaf(&["localhost"], &int);
    Pki { root, int, leaf }
}

impl Pki {
    /// What the server sends: leaf and intermediate, not the root.
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.leaf.cert.der().clone(), self.int.der()]
    }
}

fn roots(cas: &[&Ca]) -> RootCertStore {
    let mut store = RootCertStore::empty();
    for ca in cas {
        store.add(ca.der()).unwrap();
    }
    store
}

/// A pin no test key has.
fn unrelated_pin(n: u8) -> Pin {
    Pin::from_sha256([n; 32])
}

fn pin_set(host: &str, pins: &[Pin]) -> pinning::PinSetBuilder {
    PinSet::builder()
        .host_pins(host, pins.iter().copied())
        .unwrap()
}

// ---------------------------------------------------------------------------
// Server and clients
// ---------------------------------------------------------------------------

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> ServerConfig {
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

/// A tokio-rustls HTTP/1 server on 127.0.0.1 answering "pinned ok".
async fn serve(config: ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that rejects the certificate ends the handshake
                // with an alert; that is the expected outcome of many tests.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"pinned ok",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

async fn serve_chain(chain: Vec<CertificateDer<'static>>, leaf: &Leaf) -> SocketAddr {
    serve(server_config(chain, leaf.key_der())).await
}

/// A GET through hyper-rustls with `config`.
async fn https_get(
    config: ClientConfig,
    addr: SocketAddr,
) -> Result<String, hyper_util::client::legacy::Error> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let uri = format!("https://localhost:{}/", addr.port())
        .parse()
        .unwrap();
    let res = client.get(uri).await?;
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8(body.to_vec()).unwrap())
}

/// A tokio-rustls handshake to `addr` presenting `server_name`.
async fn handshake(config: ClientConfig, addr: SocketAddr, server_name: &str) -> io::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map(drop)
}

fn pinning_error(err: &io::Error) -> &PinningError {
    PinningError::find(err).unwrap_or_else(|| panic!("not a pinning error: {err:?}"))
}

/// The rustls certificate error inside a handshake failure.
fn certificate_error(err: &io::Error) -> &rustls::CertificateError {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(cert)) => cert,
        _ => panic!("not a certificate error: {err:?}"),
    }
}

// ---------------------------------------------------------------------------
// With CA validation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn right_leaf_pin_passes_through_hyper_rustls() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[pki.leaf.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    assert_eq!(https_get(config, addr).await.unwrap(), "pinned ok");
}

#[tokio::test]
async fn wrong_pins_fail_with_host_validated_chain_and_configured_pins() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let configured = [unrelated_pin(1), unrelated_pin(2)];
    let pins = pin_set("localhost", &configured).build().unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();

    let err = https_get(config, addr).await.unwrap_err();
    let pinning = PinningError::find(&err).expect("pinning error in the hyper error chain");
    assert_eq!(pinning.kind(), PinningFailure::Mismatch);
    assert_eq!(pinning.host(), "localhost");
    assert!(pinning.chain_is_validated());
    assert_eq!(pinning.pinned(), &configured);
    let chain: Vec<(String, Pin)> = pinning
        .chain()
        .iter()
        .map(|c| (c.subject().to_owned(), c.pin()))
        .collect();
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert_eq!(chain[0].1, pki.leaf.pin());
    assert!(chain[0].0.contains("CN=localhost"), "{chain:?}");
    assert_eq!(chain[1].1, pki.int.pin());
    assert!(chain[1].0.contains("CN=Legit Issuing CA"), "{chain:?}");
    assert_eq!(chain[2].1, pki.root.pin());
    assert!(chain[2].0.contains("CN=Legit Root CA"), "{chain:?}");
    assert!(chain[2].0.contains("trust anchor"), "{chain:?}");

    let text = pinning.to_string();
    assert!(
        text.contains("certificate pinning failure for localhost"),
        "{text}"
    );
    for pin in [pki.leaf.pin(), pki.int.pin(), pki.root.pin()]
        .iter()
        .chain(&configured)
    {
        assert!(text.contains(&pin.to_string()), "{pin} missing from {text}");
    }
}

#[tokio::test]
async fn pinning_error_is_reachable_through_the_rustls_error() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    let rustls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .expect("a rustls error");
    let pinning = PinningError::from_rustls(rustls_err).expect("typed pinning error");
    assert_eq!(pinning.host(), "localhost");
    assert!(matches!(
        rustls_err,
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(_))
    ));
}

#[tokio::test]
async fn backup_pin_passes_after_the_server_rotates_to_the_backup_key() {
    let pki = pki();
    // The client shipped with [old key, backup key]; the server now uses the
    // backup key.
    let old = leaf(&["localhost"], &pki.int);
    let backup = &pki.leaf;
    let addr = serve_chain(pki.chain(), backup).await;
    let pins = pin_set("localhost", &[old.pin(), backup.pin()])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn intermediate_pin_passes() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[pki.int.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn root_the_server_does_not_send_can_be_pinned() {
    let pki = pki();
    let chain = pki.chain();
    assert!(
        !chain.contains(&pki.root.der()),
        "the server must not send the root"
    );
    let addr = serve_chain(chain, &pki.leaf).await;
    let pins = pin_set("localhost", &[pki.root.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn cert_from_other_trusted_ca_with_pinned_ca_appended_fails() {
    let pki = pki();
    let attacker_ca = root("Attacker Root CA");
    let attacker_leaf = leaf(&["localhost"], &attacker_ca);
    // The attacker's chain carries the legitimately pinned CA certificates,
    // so a check of the certificates *sent* would find a pinned key.
    let chain = vec![
        attacker_leaf.cert.der().clone(),
        pki.int.der(),
        pki.root.der(),
    ];
    let addr = serve_chain(chain, &attacker_leaf).await;
    let pins = pin_set("localhost", &[pki.int.pin(), pki.root.pin()])
        .build()
        .unwrap();
    // The client trusts both CAs (the attacker's is a public CA too).
    let config = pinning::client_config(pins, roots(&[&pki.root, &attacker_ca])).unwrap();

    let err = handshake(config, addr, "localhost").await.unwrap_err();
    let pinning = pinning_error(&err);
    assert_eq!(pinning.kind(), PinningFailure::Mismatch);
    let path: Vec<Pin> = pinning.chain().iter().map(|c| c.pin()).collect();
    assert_eq!(path, vec![attacker_leaf.pin(), attacker_ca.pin()]);
}

/// Root A and root B both certify the same issuing CA key; the server sends
/// both versions. The client trusts both and pins root B.
fn cross_signed() -> (Ca, Ca, Ca, rcgen::Certificate, Leaf) {
    let root_a = root("Root A");
    let root_b = root("Root B");
    let int = intermediate("Cross-Signed Issuing CA", &root_a);
    let int_by_b = cross_sign(&int, "Cross-Signed Issuing CA", &root_b);
    let leaf = leaf(&["localhost"], &int);
    (root_a, root_b, int, int_by_b, leaf)
}

#[tokio::test]
async fn cross_signed_path_to_the_pinned_root_is_found() {
    let (root_a, root_b, int, int_by_b, leaf) = cross_signed();
    // The path through root A comes first; pin checking must not stop there.
    let chain = vec![leaf.cert.der().clone(), int.der(), int_by_b.der().clone()];
    let addr = serve_chain(chain, &leaf).await;
    let pins = pin_set("localhost", &[root_b.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&root_a, &root_b])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn cross_signed_pinned_root_outside_the_trust_store_does_not_count() {
    let (root_a, root_b, int, int_by_b, leaf) = cross_signed();
    let chain = vec![
        leaf.cert.der().clone(),
        int.der(),
        int_by_b.der().clone(),
        root_b.der(),
    ];
    let addr = serve_chain(chain, &leaf).await;
    let pins = pin_set("localhost", &[root_b.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    // Root B is sent and pinned but not trusted: no valid path contains it.
    let config = pinning::client_config(pins, roots(&[&root_a])).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    let pinning = pinning_error(&err);
    assert_eq!(pinning.chain().last().unwrap().pin(), root_a.pin());
}

#[tokio::test]
async fn cross_signed_intermediate_pin_matches_either_path() {
    let (root_a, root_b, int, int_by_b, leaf) = cross_signed();
    let chain = vec![leaf.cert.der().clone(), int_by_b.der().clone()];
    let addr = serve_chain(chain, &leaf).await;
    let pins = pin_set("localhost", &[int.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&root_a, &root_b])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn ca_validation_still_applies_to_pinned_hosts() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[pki.leaf.pin(), pki.root.pin()])
        .build()
        .unwrap();
    // Right pins, but the root is not trusted.
    let other = root("Some Other Root");
    let config = pinning::client_config(pins, roots(&[&other])).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    assert_eq!(
        certificate_error(&err),
        &rustls::CertificateError::UnknownIssuer
    );
}

#[tokio::test]
async fn unpinned_host_gets_ca_validation_alone() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("elsewhere.example", &[unrelated_pin(1), unrelated_pin(2)])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn wildcard_pattern_pins_one_label_subdomains() {
    let root = root("Wildcard Root");
    let api = leaf(&["api.pinned.test"], &root);
    let deep = leaf(&["a.api.pinned.test"], &root);
    let pins = pin_set("*.pinned.test", &[unrelated_pin(1), unrelated_pin(2)])
        .build()
        .unwrap();

    // api.pinned.test is covered by the wildcard: wrong pins fail.
    let addr = serve_chain(vec![api.cert.der().clone()], &api).await;
    let config = pinning::client_config(pins.clone(), roots(&[&root])).unwrap();
    let err = handshake(config, addr, "api.pinned.test")
        .await
        .unwrap_err();
    assert_eq!(pinning_error(&err).pattern(), Some("*.pinned.test"));

    // a.api.pinned.test is two labels deep: not covered, CA validation only.
    let addr = serve_chain(vec![deep.cert.der().clone()], &deep).await;
    let config = pinning::client_config(pins, roots(&[&root])).unwrap();
    handshake(config, addr, "a.api.pinned.test").await.unwrap();
}

#[tokio::test]
async fn ip_address_host_can_be_pinned() {
    let root = root("IP Root");
    let ip_leaf = leaf(&["127.0.0.1"], &root);
    let addr = serve_chain(vec![ip_leaf.cert.der().clone()], &ip_leaf).await;
    let wrong = pin_set("127.0.0.1", &[unrelated_pin(1), unrelated_pin(2)])
        .build()
        .unwrap();
    let config = pinning::client_config(wrong, roots(&[&root])).unwrap();
    let err = handshake(config, addr, "127.0.0.1").await.unwrap_err();
    assert_eq!(pinning_error(&err).host(), "127.0.0.1");

    let right = pin_set("127.0.0.1", &[ip_leaf.pin(), unrelated_pin(2)])
        .build()
        .unwrap();
    let config = pinning::client_config(right, roots(&[&root])).unwrap();
    handshake(config, addr, "127.0.0.1").await.unwrap();
}

#[tokio::test]
async fn tls12_handshake_with_pinned_key_passes() {
    let pki = pki();
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain(), pki.leaf.key_der())
        .unwrap();
    let addr = serve(config).await;
    let pins = pin_set("localhost", &[pki.root.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

// ---------------------------------------------------------------------------
// Expiry and report-only
// ---------------------------------------------------------------------------

fn past() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(86_400)
}

fn future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(365 * 86_400)
}

#[tokio::test]
async fn expired_pins_with_unpinned_policy_fall_back_to_ca_validation() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .expires_at(past())
        .after_expiry(AfterExpiry::Unpinned)
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn expired_pins_with_refuse_policy_refuse_even_the_right_key() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[pki.leaf.pin(), pki.root.pin()])
        .expires_at(past())
        .after_expiry(AfterExpiry::Refuse)
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    let pinning = pinning_error(&err);
    assert_eq!(pinning.kind(), PinningFailure::Expired);
    assert!(pinning.to_string().contains("expired"));
}

#[tokio::test]
async fn expired_pins_with_report_only_policy_report_and_connect() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let reports = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reports);
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .expires_at(past())
        .after_expiry(AfterExpiry::ReportOnly)
        .on_failure(move |err| {
            assert_eq!(err.kind(), PinningFailure::Mismatch);
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
    assert_eq!(reports.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pins_before_their_expiry_are_enforced() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .expires_at(future())
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    assert_eq!(pinning_error(&err).kind(), PinningFailure::Mismatch);
}

#[tokio::test]
async fn report_only_mismatch_calls_back_with_the_full_error_and_connects() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let seen: Arc<Mutex<Vec<PinningError>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .report_only()
        .on_failure(move |err| sink.lock().unwrap().push(err.clone()))
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    assert_eq!(https_get(config, addr).await.unwrap(), "pinned ok");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].host(), "localhost");
    assert_eq!(seen[0].chain().len(), 3);
}

#[cfg(feature = "tracing")]
#[tokio::test]
async fn report_only_mismatch_logs_a_warning_naming_host_and_pins() {
    // The current-thread test runtime runs the handshake on this thread.
    let (logs, _guard) = common::LogCapture::install(tracing::Level::TRACE);

    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .report_only()
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    handshake(config, addr, "localhost").await.unwrap();

    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("pin_mismatch_reported"), "{text}");
    assert!(text.contains("localhost"), "{text}");
    assert!(text.contains(&pki.leaf.pin().to_string()), "{text}");
    assert!(text.contains(&unrelated_pin(1).to_string()), "{text}");
}

#[tokio::test]
async fn report_only_does_not_relax_ca_validation() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .report_only()
        .build()
        .unwrap();
    let other = root("Untrusted Here");
    let config = pinning::client_config(pins, roots(&[&other])).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    assert_eq!(
        certificate_error(&err),
        &rustls::CertificateError::UnknownIssuer
    );
}

#[tokio::test]
async fn failure_callback_also_runs_when_enforcing() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let reports = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reports);
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .on_failure(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let config = pinning::client_config(pins, roots(&[&pki.root])).unwrap();
    assert!(handshake(config, addr, "localhost").await.is_err());
    assert_eq!(reports.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// Pins instead of CA validation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn self_signed_ca_true_certificate_passes_without_ca() {
    let cert = self_signed_ca_true(&["localhost"]);
    let addr = serve_chain(vec![cert.cert.der().clone()], &cert).await;
    let pins = pin_set("localhost", &[cert.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config_without_ca(pins).unwrap();
    assert_eq!(https_get(config, addr).await.unwrap(), "pinned ok");
}

#[tokio::test]
async fn without_ca_wrong_pin_fails_with_the_sent_chain() {
    let cert = self_signed_ca_true(&["localhost"]);
    let addr = serve_chain(vec![cert.cert.der().clone()], &cert).await;
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .build()
        .unwrap();
    let config = pinning::client_config_without_ca(pins).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    let pinning = pinning_error(&err);
    assert_eq!(pinning.kind(), PinningFailure::Mismatch);
    assert!(!pinning.chain_is_validated());
    assert_eq!(pinning.chain().len(), 1);
    assert_eq!(pinning.chain()[0].pin(), cert.pin());
    assert!(pinning.to_string().contains("not CA-validated"));
}

#[tokio::test]
async fn without_ca_the_server_name_is_checked() {
    let cert = self_signed_ca_true(&["other.internal"]);
    let addr = serve_chain(vec![cert.cert.der().clone()], &cert).await;
    let pins = pin_set("localhost", &[cert.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config_without_ca(pins).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    assert!(
        matches!(
            certificate_error(&err),
            rustls::CertificateError::NotValidForNameContext { .. }
                | rustls::CertificateError::NotValidForName
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn without_ca_validity_dates_are_checked() {
    let key = KeyPair::generate().unwrap();
    let mut params = leaf_params(&["localhost"]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let expired = Leaf {
        cert: params.self_signed(&key).unwrap(),
        key,
    };
    let addr = serve_chain(vec![expired.cert.der().clone()], &expired).await;
    let pins = pin_set("localhost", &[expired.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config_without_ca(pins).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    assert!(
        matches!(
            certificate_error(&err),
            rustls::CertificateError::ExpiredContext { .. }
        ),
        "{err:?}"
    );
}

/// Serves `chain` while signing the handshake with `key`, which does not
/// belong to the leaf: an attacker who copied a pinned certificate.
#[derive(Debug)]
struct StolenCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for StolenCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

#[tokio::test]
async fn without_ca_a_copied_certificate_without_its_key_fails_the_handshake_signature() {
    let cert = self_signed_ca_true(&["localhost"]);
    let impostor_key = KeyPair::generate().unwrap();
    let signing_key = provider()
        .key_provider
        .load_private_key(PrivatePkcs8KeyDer::from(impostor_key.serialize_der()).into())
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![cert.cert.der().clone()], signing_key);
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(StolenCert(Arc::new(certified))));
    let addr = serve(config).await;

    let pins = pin_set("localhost", &[cert.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config_without_ca(pins).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    assert!(
        matches!(
            err.get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>()),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature
            ))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn without_ca_a_pinned_private_ca_vouches_for_its_leaves() {
    let pki = pki();
    let addr = serve_chain(pki.chain(), &pki.leaf).await;
    let pins = pin_set("localhost", &[pki.int.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config_without_ca(pins).unwrap();
    handshake(config, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn without_ca_appending_the_pinned_ca_to_a_foreign_leaf_fails() {
    let pki = pki();
    let attacker_ca = root("Attacker Root CA");
    let self_signed = self_signed_ca_true(&["localhost"]);
    let issued = leaf(&["localhost"], &attacker_ca);
    for attacker in [&self_signed, &issued] {
        let chain = vec![attacker.cert.der().clone(), pki.int.der(), pki.root.der()];
        let addr = serve_chain(chain, attacker).await;
        let pins = pin_set("localhost", &[pki.int.pin(), pki.root.pin()])
            .build()
            .unwrap();
        let config = pinning::client_config_without_ca(pins).unwrap();
        let err = handshake(config, addr, "localhost").await.unwrap_err();
        let pinning = pinning_error(&err);
        assert_eq!(pinning.kind(), PinningFailure::Mismatch);
        assert_eq!(pinning.chain()[0].pin(), attacker.pin());
    }
}

#[tokio::test]
async fn without_ca_unpinned_hosts_are_refused() {
    let cert = self_signed_ca_true(&["localhost"]);
    let addr = serve_chain(vec![cert.cert.der().clone()], &cert).await;
    let pins = pin_set("elsewhere.internal", &[cert.pin(), unrelated_pin(1)])
        .build()
        .unwrap();
    let config = pinning::client_config_without_ca(pins).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    assert_eq!(pinning_error(&err).kind(), PinningFailure::NoPinsForHost);
}

#[tokio::test]
async fn without_ca_expired_pins_refuse_whatever_the_policy() {
    let cert = self_signed_ca_true(&["localhost"]);
    let addr = serve_chain(vec![cert.cert.der().clone()], &cert).await;
    let pins = pin_set("localhost", &[cert.pin(), unrelated_pin(1)])
        .expires_at(past())
        .after_expiry(AfterExpiry::Unpinned)
        .build()
        .unwrap();
    let config = pinning::client_config_without_ca(pins).unwrap();
    let err = handshake(config, addr, "localhost").await.unwrap_err();
    assert_eq!(pinning_error(&err).kind(), PinningFailure::Expired);
}

#[test]
fn without_ca_report_only_is_a_config_error() {
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .report_only()
        .build()
        .unwrap();
    let err = PinnedVerifier::without_ca(pins).unwrap_err();
    assert_eq!(err.component(), "pinning");
    assert!(err.message().contains("report-only"), "{err}");
}

#[test]
fn empty_root_store_is_a_config_error() {
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .build()
        .unwrap();
    let err = PinnedVerifier::new(pins, RootCertStore::empty()).unwrap_err();
    assert!(err.message().contains("empty"), "{err}");
}

#[test]
fn verifier_debug_lists_pins_and_mode() {
    let pins = pin_set("localhost", &[unrelated_pin(1), unrelated_pin(2)])
        .on_failure(|_| {})
        .build()
        .unwrap();
    let text = format!("{:?}", PinnedVerifier::without_ca(pins).unwrap());
    assert!(text.contains("localhost"), "{text}");
    assert!(text.contains(&unrelated_pin(1).to_string()), "{text}");
    assert!(text.contains("validates_ca: false"), "{text}");
    assert!(text.contains("<callback>"), "{text}");
}

// ---------------------------------------------------------------------------
// Parsers (property tests)
// ---------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;
    use tower_perimeter::pinning::HostPattern;

    proptest! {
        #[test]
        fn every_spelling_round_trips(digest in any::<[u8; 32]>()) {
            let pin = Pin::from_sha256(digest);
            for text in [pin.to_okhttp(), pin.to_hpkp(), pin.to_curl(), pin.to_string()] {
                prop_assert_eq!(text.parse::<Pin>().unwrap(), pin);
            }
        }

        #[test]
        fn arbitrary_text_never_panics_and_accepted_pins_reprint(text in ".{0,80}") {
            if let Ok(pin) = text.parse::<Pin>() {
                prop_assert_eq!(pin.to_string().parse::<Pin>().unwrap(), pin);
            }
        }

        #[test]
        fn prefixed_arbitrary_base64_parses_only_with_32_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..48),
            prefix in prop::sample::select(vec!["sha256/", "sha256//", "SHA256/"]),
        ) {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let parsed = format!("{prefix}{b64}").parse::<Pin>();
            prop_assert_eq!(parsed.is_ok(), bytes.len() == 32);
        }

        #[test]
        fn host_patterns_never_panic(text in "[a-z0-9*.\\-\\[\\]:]{0,40}") {
            let _ = HostPattern::parse(&text);
        }

        #[test]
        fn wildcard_matches_exactly_one_extra_label(
            label in "[a-z0-9]{1,10}",
            base in "[a-z]{2,10}\\.[a-z]{3,10}\\.test",
        ) {
            let pattern = HostPattern::parse(&format!("*.{base}")).unwrap();
            let one_label = format!("{label}.{base}");
            let two_labels = format!("{label}.x.{base}");
            prop_assert!(pattern.matches(&one_label));
            prop_assert!(!pattern.matches(&base));
            prop_assert!(!pattern.matches(&two_labels));
        }
    }
}

// ---------------------------------------------------------------------------
// openssl as the reference
// ---------------------------------------------------------------------------

mod openssl {
    use super::*;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    fn run(args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl on PATH");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The pipeline from RFC 7469 appendix A / OkHttp's documentation.
    fn openssl_pin(cert_pem: &str) -> String {
        let pubkey = run(&["x509", "-pubkey", "-noout"], cert_pem.as_bytes());
        let der = run(&["pkey", "-pubin", "-outform", "der"], &pubkey);
        let digest = run(&["dgst", "-sha256", "-binary"], &der);
        let b64 = run(&["enc", "-base64"], &digest);
        format!("sha256/{}", String::from_utf8(b64).unwrap().trim())
    }

    fn self_signed_with(key: &KeyPair) -> rcgen::Certificate {
        leaf_params(&["localhost"]).self_signed(key).unwrap()
    }

    #[test]
    #[ignore = "needs openssl"]
    fn pins_agree_with_openssl_for_p256_rsa2048_and_ed25519() {
        let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ed25519 = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        // ring cannot generate RSA keys; openssl makes one and rcgen signs with it.
        let rsa_pem = String::from_utf8(run(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            b"",
        ))
        .unwrap();
        let rsa = KeyPair::from_pem_and_sign_algo(&rsa_pem, &rcgen::PKCS_RSA_SHA256).unwrap();

        for (name, key) in [("P-256", &p256), ("RSA-2048", &rsa), ("Ed25519", &ed25519)] {
            let cert = self_signed_with(key);
            let text = run(&["x509", "-noout", "-text"], cert.pem().as_bytes());
            let text = String::from_utf8_lossy(&text);
            let expected_alg = match name {
                "P-256" => "prime256v1",
                "RSA-2048" => "(2048 bit)",
                _ => "ED25519",
            };
            assert!(text.contains(expected_alg), "{name}: {text}");
            let ours = Pin::from_certificate_der(cert.der()).unwrap().to_string();
            assert_eq!(ours, openssl_pin(&cert.pem()), "{name}");
        }
    }

    #[tokio::test]
    #[ignore = "needs openssl"]
    async fn openssl_req_x509_self_signed_certificate_works_without_ca() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key.pem");
        let cert_path = dir.path().join("cert.pem");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .arg("-keyout")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .stderr(Stdio::null())
            .status()
            .expect("openssl on PATH");
        assert!(status.success());
        let cert_pem = std::fs::read_to_string(&cert_path).unwrap();
        let text = run(&["x509", "-noout", "-text"], cert_pem.as_bytes());
        assert!(
            String::from_utf8_lossy(&text).contains("CA:TRUE"),
            "openssl req -x509 should mark the certificate CA:TRUE"
        );

        let cert: CertificateDer<'static> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let key_pem = std::fs::read(&key_path).unwrap();
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .unwrap()
            .unwrap();
        let addr = serve(server_config(vec![cert.clone()], key)).await;

        let pin: Pin = openssl_pin(&cert_pem).parse().unwrap();
        assert_eq!(pin, Pin::from_certificate_der(&cert).unwrap());
        let pins = pin_set("localhost", &[pin, unrelated_pin(1)])
            .build()
            .unwrap();
        let config = pinning::client_config_without_ca(pins.clone()).unwrap();
        assert_eq!(https_get(config, addr).await.unwrap(), "pinned ok");

        // The same certificate is rejected by CA validation: webpki refuses
        // a CA certificate as a server certificate, which is why pins
        // replace the CA check here.
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let config = pinning::client_config(pins, roots).unwrap();
        assert!(handshake(config, addr, "localhost").await.is_err());
    }
}

// ---------------------------------------------------------------------------
// The pin tool (examples/pin.rs)
// ---------------------------------------------------------------------------

mod pin_tool {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    /// The example binary cargo builds next to this test's directory
    /// (`target/<profile>/examples/pin`).
    fn pin_example() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
        let path = profile_dir
            .join("examples")
            .join(format!("pin{}", std::env::consts::EXE_SUFFIX));
        assert!(
            path.exists(),
            "{} missing: build it with `cargo build --example pin --features pinning`",
            path.display()
        );
        path
    }

    #[test]
    #[ignore = "needs the pin example (cargo build --example pin --features pinning)"]
    fn prints_the_pin_of_every_certificate_in_a_pem_chain() {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("chain.pem");
        let pem = [pki.leaf.cert.pem(), pki.int.cert.pem(), pki.root.cert.pem()].concat();
        std::fs::write(&pem_path, pem).unwrap();

        let out = Command::new(pin_example()).arg(&pem_path).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for (subject, pin) in [
            ("CN=localhost", pki.leaf.pin()),
            ("CN=Legit Issuing CA", pki.int.pin()),
            ("CN=Legit Root CA", pki.root.pin()),
        ] {
            assert!(text.contains(subject), "{subject} missing: {text}");
            assert!(text.contains(&pin.to_string()), "{pin} missing: {text}");
        }

        let out = Command::new(pin_example())
            .args(["--format", "curl"])
            .arg(&pem_path)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&pki.root.pin().to_curl()), "{text}");
    }

    #[test]
    #[ignore = "needs the pin example (cargo build --example pin --features pinning)"]
    fn a_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let out = Command::new(pin_example()).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no CERTIFICATE"));
    }

    #[tokio::test]
    #[ignore = "needs the pin example (cargo build --example pin --features pinning)"]
    async fn connect_prints_the_chain_a_live_server_sends() {
        let pki = pki();
        let addr = serve_chain(pki.chain(), &pki.leaf).await;
        let exe = pin_example();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(exe)
                .args(["--connect", &addr.to_string(), "--server-name", "localhost"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("as sent by the server"), "{text}");
        assert!(text.contains(&pki.leaf.pin().to_string()), "{text}");
        assert!(text.contains(&pki.int.pin().to_string()), "{text}");
        // The root was not sent, so it is not printed.
        assert!(!text.contains(&pki.root.pin().to_string()), "{text}");
    }
}
