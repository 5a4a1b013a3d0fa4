//! The gateway's parts, kept apart from the command line so that the
//! integration tests can start them in-process on ephemeral ports:
//!
//! - [`start_standin`]: a stand-in for the Face SDK Web Service;
//! - [`start_gateway`]: the HTTPS gateway, with the middleware stack in
//!   [`serve`]; [`start_gateway_with_http`] adds the plain-HTTP listener that
//!   redirects browsers to it;
//! - [`upstream_tls`]: the client TLS configuration for an `https` upstream,
//!   pinned with `--upstream-pin`;
//! - [`self_signed`], [`load_tls`]: certificates for it.
#![allow(dead_code)] // each user (the example, the tests) uses a part of it

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request as AxumRequest, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceBuilder, ServiceExt as _};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::map_response_body::MapResponseBodyLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_perimeter::basic_auth::{BasicAuthLayer, CredentialStore};
use tower_perimeter::https::{
    HstsLayer, HttpsRedirectLayer, PublicHosts, Transport, TrustedProxies,
};
use tower_perimeter::proxy::{JsonErrorsLayer, ReverseProxy};
use tower_perimeter::throttle::{FailMode, Throttle, ThrottlePolicy};
#[allow(unused_imports)] // named in the docs
use tower_perimeter::ConfigError;
use tower_perimeter::PeerAddr;
use tracing::Level;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The header the upstream finds the authenticated user name in.
pub(crate) const USER_HEADER: &str = "x-authenticated-user";

/// The version the stand-in reports on `/api/ping`.
pub(crate) const STANDIN_VERSION: &str = "3.22.0-standin";

// ---------------------------------------------------------------------------
// The stand-in Web Service
// ---------------------------------------------------------------------------

/// What the stand-in saw, for tests: how many requests reached it and the
/// headers of the last one.
#[derive(Debug, Default)]
pub(crate) struct StandInLog {
    hits: AtomicU64,
    last_headers: Mutex<Option<HeaderMap>>,
    last_uri: Mutex<Option<http::Uri>>,
}

impl StandInLog {
    /// Requests that reached the stand-in.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// The headers of the last request that reached the stand-in.
    pub(crate) fn last_headers(&self) -> Option<HeaderMap> {
        self.last_headers.lock().ok()?.clone()
    }

    /// The request target (path and query) of the last request that reached
    /// the stand-in.
    pub(crate) fn last_uri(&self) -> Option<http::Uri> {
        self.last_uri.lock().ok()?.clone()
    }
}

/// A running stand-in.
#[derive(Debug)]
pub(crate) struct StandIn {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// What it saw.
    pub(crate) log: Arc<StandInLog>,
    task: JoinHandle<()>,
}

impl StandIn {
    /// Stops it (its port then refuses connections).
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// The stand-in's routes: the shapes of the Face SDK Web Service's API that a
/// gateway has to carry.
pub(crate) fn standin_router(log: Arc<StandInLog>) -> Router {
    Router::new()
        .route("/api/ping", get(ping))
        .route("/api/detect", post(detect))
        .route("/api/match", post(match_faces))
        // Not part of the real API: streams the request body back, so that
        // the gateway's streaming can be checked end to end.
        .route("/api/echo", post(echo))
        // Images arrive as base64 inside JSON: many megabytes.
        .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(log.clone(), record))
        .with_state(log)
}

async fn record(State(log): State<Arc<StandInLog>>, req: AxumRequest, next: Next) -> AxumResponse {
    log.hits.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut last) = log.last_headers.lock() {
        *last = Some(req.headers().clone());
    }
    if let Ok(mut last) = log.last_uri.lock() {
        *last = Some(req.uri().clone());
    }
    next.run(req).await
}

async fn ping() -> Json<Value> {
    Json(
        json!({ "code": 0, "version": STANDIN_VERSION, "service": "Face SDK Web Service (stand-in)" }),
    )
}

fn bad_request(message: &str) -> AxumResponse {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "code": 1, "message": message })),
    )
        .into_response()
}

/// Decodes the base64 image in `field` of `body`; the error is a message
/// for the client.
fn image(body: &Value, field: &str) -> Result<Vec<u8>, String> {
    let text = body
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{field}` must be a base64 string"))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| format!("`{field}` is not valid base64"))
}

async fn detect(body: Result<Json<Value>, JsonRejection>) -> AxumResponse {
    let Ok(Json(body)) = body else {
        return bad_request("body must be JSON");
    };
    match image(&body, "image") {
        Ok(bytes) => Json(json!({
            "code": 0,
            "image_bytes": bytes.len(),
            "faces": [{ "score": 0.98, "rectangle": { "x": 64, "y": 48, "width": 128, "height": 160 } }],
        }))
        .into_response(),
        Err(message) => bad_request(&message),
    }
}

async fn match_faces(body: Result<Json<Value>, JsonRejection>) -> AxumResponse {
    let Ok(Json(body)) = body else {
        return bad_request("body must be JSON");
    };
    let (a, b) = match (image(&body, "image1"), image(&body, "image2")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
    };
    // A deterministic stand-in for a similarity score.
    let similarity = if a == b { 1.0 } else { 0.42 };
    Json(json!({ "code": 0, "similarity": similarity, "match": a == b })).into_response()
}

async fn echo(req: AxumRequest) -> AxumResponse {
    let (parts, body) = req.into_parts();
    let mut res = AxumResponse::new(body);
    if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
        res.headers_mut()
            .insert(http::header::CONTENT_TYPE, ct.clone());
    }
    res
}

/// Starts the stand-in on `listener`.
pub(crate) fn start_standin(listener: TcpListener) -> std::io::Result<StandIn> {
    let addr = listener.local_addr()?;
    let log = Arc::new(StandInLog::default());
    let app = standin_router(log.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(StandIn { addr, log, task })
}

/// Starts the stand-in behind TLS on `listener`, as a Web Service inside a
/// DMZ with its own (often self-signed) certificate would be.
pub(crate) fn start_standin_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<StandIn> {
    let addr = listener.local_addr()?;
    let log = Arc::new(StandInLog::default());
    let app = standin_router(log.clone());
    let acceptor = TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let service = TowerToHyperService::new(app);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(StandIn { addr, log, task })
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// Paths of a certificate and its key.
#[derive(Debug, Clone)]
pub(crate) struct CertFiles {
    /// PEM certificate.
    pub(crate) cert: PathBuf,
    /// PEM private key (mode 0600).
    pub(crate) key: PathBuf,
}

/// Writes a new self-signed certificate for `localhost` and `127.0.0.1` into
/// `dir` as `cert.pem` and `key.pem`.
pub(crate) fn self_signed(dir: &Path) -> Result<CertFiles, String> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    write_file(&cert, certified.cert.pem().as_bytes(), 0o644)?;
    write_file(&key, certified.key_pair.serialize_pem().as_bytes(), 0o600)?;
    Ok(CertFiles { cert, key })
}

/// Writes `data` to `path`, readable by its owner alone where `mode` says so.
pub(crate) fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A rustls server configuration from PEM files, offering HTTP/2 and
/// HTTP/1.1 through ALPN.
pub(crate) fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("--cert {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("--key {}: {e}", key.display()))?;
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--cert {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key_der = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("--key {}: {e}", key.display()))?
        .ok_or_else(|| format!("--key {}: no PEM private key in it", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("--cert/--key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

// ---------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------

/// What the gateway is told on the command line, less the files.
#[derive(Debug, Clone)]
pub(crate) struct GatewayOptions {
    /// Upstream base URL.
    pub(crate) upstream: String,
    /// Basic auth realm.
    pub(crate) realm: String,
    /// Answer `407` / read `Proxy-Authorization` instead of `401` /
    /// `Authorization`.
    pub(crate) proxy_auth: bool,
    /// Largest request body, in bytes.
    pub(crate) max_body: usize,
    /// How long the upstream has to answer.
    pub(crate) upstream_timeout: Duration,
    /// Brute-force throttling of failed logins (per client address and per
    /// user name), answered `429` before any password hash runs.
    pub(crate) throttle: bool,
    /// Keep the throttle's counters in this Redis (`redis://host:port/db`),
    /// shared by every gateway instance that names it; `None`: in memory.
    pub(crate) throttle_redis: Option<String>,
    /// When the throttle's store cannot be reached, answer `429` instead of
    /// checking the password anyway.
    pub(crate) throttle_fail_closed: bool,
    /// Hosts (`HOST` or `HOST:PORT`) that plain-HTTP requests may be
    /// redirected to; empty: `localhost` and `127.0.0.1` on the HTTPS port.
    pub(crate) public_hosts: Vec<String>,
    /// CIDRs of proxies whose `Forwarded` / `X-Forwarded-*` headers are
    /// believed (for the redirect, HSTS and the throttle's client address).
    pub(crate) trusted_proxies: Vec<String>,
    /// Pins (`sha256/BASE64`, `pin-sha256="BASE64"` or `sha256//BASE64`) of
    /// an `https` upstream's key; when given, they replace CA validation.
    pub(crate) upstream_pins: Vec<String>,
    /// Accept a single upstream pin (by default a backup pin is required).
    pub(crate) allow_single_pin: bool,
    /// How long a client may take to send a whole request head (HTTP/1.1),
    /// or to answer a ping (HTTP/2), before its connection is closed.
    pub(crate) header_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            upstream: "http://127.0.0.1:41101".to_owned(),
            realm: "Face SDK".to_owned(),
            proxy_auth: false,
            max_body: 64 * 1024 * 1024,
            upstream_timeout: Duration::from_secs(30),
            throttle: true,
            throttle_redis: None,
            throttle_fail_closed: false,
            public_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            upstream_pins: Vec::new(),
            allow_single_pin: false,
            header_timeout: Duration::from_secs(20),
        }
    }
}

/// A running gateway.
#[derive(Debug)]
pub(crate) struct Gateway {
    /// Where it listens for HTTPS.
    pub(crate) addr: SocketAddr,
    /// Where it listens for plain HTTP, if it does.
    pub(crate) http_addr: Option<SocketAddr>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Stops accepting connections, lets in-flight requests finish (for at
    /// most [`DRAIN_GRACE`]), then returns.
    pub(crate) async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// `Strict-Transport-Security: max-age` of the gateway's answers: one day,
/// a cautious start (HSTS is sticky; raise it once HTTPS is there to stay).
pub(crate) const HSTS_MAX_AGE: Duration = Duration::from_secs(86_400);

/// How long in-flight requests get to finish on shutdown.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Builds the middleware stack and serves HTTPS on `listener`.
///
/// # Errors
///
/// When an option is rejected by a layer's builder (a [`ConfigError`] for a
/// bad realm or upstream URL).
pub(crate) fn start_gateway(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    options: &GatewayOptions,
    store: CredentialStore,
) -> Result<Gateway, BoxError> {
    start_gateway_with_http(listener, None, tls, options, store)
}

/// Like [`start_gateway`], and serves plain HTTP on `http` too: browsers are
/// redirected to HTTPS, requests that carry credentials are refused.
///
/// # Errors
///
/// As [`start_gateway`], and for a bad `--public-host` or `--trusted-proxy`.
pub(crate) fn start_gateway_with_http(
    https: TcpListener,
    http: Option<TcpListener>,
    tls: Arc<rustls::ServerConfig>,
    options: &GatewayOptions,
    store: CredentialStore,
) -> Result<Gateway, BoxError> {
    let throttle = build_throttle(options)?;
    start_gateway_on(https, http, tls, options, store, throttle)
}

/// The [`TrustedProxies`] of `--trusted-proxy`. Forwarded headers from
/// anyone else are removed before the upstream sees them.
///
/// # Errors
///
/// A malformed CIDR.
pub(crate) fn trusted_proxies(options: &GatewayOptions) -> Result<TrustedProxies, BoxError> {
    let mut proxies = TrustedProxies::new().strip_untrusted(true);
    for cidr in &options.trusted_proxies {
        proxies = proxies
            .trust(cidr)
            .map_err(|e| format!("--trusted-proxy {cidr:?}: {e}"))?;
    }
    Ok(proxies)
}

/// The brute-force throttle of `options`, if on: counters in memory or in
/// Redis. One throttle is shared by every worker of a gateway, so a client
/// cannot multiply its attempts by the number of cores.
///
/// # Errors
///
/// A bad Redis URL or trusted-proxy CIDR, or a Redis URL in a build
/// without the `redis` feature.
pub(crate) fn build_throttle(options: &GatewayOptions) -> Result<Option<Throttle>, BoxError> {
    if !options.throttle {
        return Ok(None);
    }
    // Default policy: 10 failures per client address and 5 per user name in
    // 15 minutes, then locks that double up to 15 minutes.
    let policy = ThrottlePolicy::default();
    let throttle = match &options.throttle_redis {
        None => Throttle::in_memory(policy)?,
        #[cfg(feature = "redis")]
        Some(url) => {
            let store = tower_perimeter::throttle::RedisStore::new(url)
                .map_err(|e| format!("--throttle-redis: {e}"))?;
            Throttle::with_store(policy, store)?
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => return Err("--throttle-redis needs a build with the `redis` feature".into()),
    };
    let mode = if options.throttle_fail_closed {
        FailMode::Closed
    } else {
        FailMode::Open
    };
    // The client address is the connection's peer, or the address a trusted
    // proxy forwarded: the same rules as the redirect and HSTS.
    Ok(Some(
        throttle
            .fail_mode(mode)
            .trusted_proxies(trusted_proxies(options)?),
    ))
}

/// The allow-list of hosts plain-HTTP requests may be redirected to.
///
/// # Errors
///
/// A malformed `--public-host`.
pub(crate) fn public_hosts(
    options: &GatewayOptions,
    http_port: u16,
    https_port: u16,
) -> Result<PublicHosts, BoxError> {
    let mut hosts = PublicHosts::new();
    if options.public_hosts.is_empty() {
        hosts = hosts
            .allow(&format!("localhost:{https_port}"))?
            .allow(&format!("127.0.0.1:{https_port}"))?;
    }
    for host in &options.public_hosts {
        hosts = hosts
            .allow(host)
            .map_err(|e| format!("--public-host {host:?}: {e}"))?;
    }
    // A listed host without a port: a request that came to the plain port
    // goes to the HTTPS port (and one that named no port, to 443).
    Ok(hosts.map_port(http_port, https_port))
}

/// The client TLS configuration for an `https` upstream: with
/// `--upstream-pin`, the upstream's key must match one of the pins (and CA
/// validation is not used: the usual DMZ service has a self-signed
/// certificate); without, `None`, and the proxy validates against the web
/// PKI roots.
///
/// # Errors
///
/// Pins for an `http://` upstream, a malformed pin, a single pin without
/// `allow_single_pin`, or pins in a build without the `pinning` feature.
pub(crate) fn upstream_tls(
    options: &GatewayOptions,
) -> Result<Option<rustls::ClientConfig>, BoxError> {
    if options.upstream_pins.is_empty() {
        return Ok(None);
    }
    let uri: http::Uri = options
        .upstream
        .parse()
        .map_err(|e| format!("--upstream {:?}: {e}", options.upstream))?;
    if uri.scheme_str() != Some("https") {
        return Err("--upstream-pin needs an https:// --upstream".into());
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("--upstream {:?}: no host", options.upstream))?;
    pinned_client_config(host, options)
}

#[cfg(feature = "pinning")]
fn pinned_client_config(
    host: &str,
    options: &GatewayOptions,
) -> Result<Option<rustls::ClientConfig>, BoxError> {
    use tower_perimeter::pinning::{self, PinSet};
    let mut builder = PinSet::builder()
        .host(host, &options.upstream_pins)
        .map_err(|e| format!("--upstream-pin: {e}"))?;
    if options.allow_single_pin {
        builder = builder.allow_single_pin();
    }
    let pins = builder.build().map_err(|e| {
        format!("--upstream-pin: {e} (give a backup pin too, or --allow-single-pin)")
    })?;
    // No ALPN here: the proxy's connector sets the protocols it speaks.
    Ok(Some(pinning::client_config_without_ca(pins)?))
}

#[cfg(not(feature = "pinning"))]
fn pinned_client_config(
    _host: &str,
    _options: &GatewayOptions,
) -> Result<Option<rustls::ClientConfig>, BoxError> {
    Err("--upstream-pin needs a build with the `pinning` feature".into())
}

/// The pin (`sha256/BASE64` of the key) of the first certificate in the PEM
/// file `cert`: what clients of this gateway put in their pin sets.
///
/// # Errors
///
/// An unreadable file or certificate.
#[cfg(feature = "pinning")]
pub(crate) fn certificate_pin(cert: &Path) -> Result<String, BoxError> {
    let pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let der = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .ok_or_else(|| format!("{}: no PEM certificate in it", cert.display()))??;
    Ok(tower_perimeter::pinning::Pin::from_certificate_der(&der)?.to_okhttp())
}

fn start_gateway_on(
    https: TcpListener,
    http: Option<TcpListener>,
    tls: Arc<rustls::ServerConfig>,
    options: &GatewayOptions,
    store: CredentialStore,
    throttle: Option<Throttle>,
) -> Result<Gateway, BoxError> {
    let mut proxy = ReverseProxy::builder()
        .upstream(&options.upstream)?
        .forwarded_proto("https")?
        .timeout(options.upstream_timeout);
    if let Some(config) = upstream_tls(options)? {
        proxy = proxy.tls_config(config);
    }
    let proxy = proxy.build()?;

    let mut auth = BasicAuthLayer::builder()
        .realm(&options.realm)?
        .store(store)
        .forward_user_header(USER_HEADER)?;
    if options.proxy_auth {
        auth = auth.proxy_auth();
    }
    if let Some(throttle) = throttle {
        auth = auth.throttle(throttle);
    }
    let auth = auth.build()?;

    let addr = https.local_addr()?;
    let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
    let proxies = trusted_proxies(options)?;
    // Without a plain listener no request is plain, and the redirect layer
    // passes everything; its allow-list then only has to be valid.
    let hosts = public_hosts(options, http_addr.map_or(80, |a| a.port()), addr.port())?;
    let redirect = HttpsRedirectLayer::permanent(hosts)?.trusted_proxies(proxies.clone());

    // The stack, outermost first. A request passes the layers top to bottom;
    // a response passes them bottom to top.
    let service = ServiceBuilder::new()
        // 1. Request ids first, so that every later layer (the trace span
        //    included) sees the id, and every answer carries it back,
        //    rejections included. A client-sent `x-request-id` is kept.
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        // 2. HSTS on every answer over TLS, rejections included, so a
        //    browser that ever reached the gateway never tries plain HTTP
        //    again (not for `localhost` or IP hosts: browsers ignore it there).
        //    Never on plain HTTP (RFC 6797 section 7.2).
        .layer(HstsLayer::new(HSTS_MAX_AGE).trusted_proxies(proxies.clone()))
        // 3. Tracing next: it times and logs every request, those rejected
        //    below included. Its default span leaves headers out, so the
        //    credentials, not yet stripped here, never reach a log.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        // 4. Plain HTTP ends here: browsers are redirected to HTTPS on an
        //    allow-listed host (a hostile `Host` gets 400, never a redirect
        //    elsewhere); a request carrying credentials is refused with 403
        //    before authentication, so they never reach a password check or
        //    the upstream. HTTPS requests pass.
        .layer(redirect)
        // 5. Behind a trusted proxy, the client is the one it forwarded:
        //    the upstream's `Forwarded: for=` / `X-Forwarded-For` name it.
        .map_request(client_as_peer(proxies.clone()))
        // 6. Outside the layers that answer by themselves (timeout, body
        //    limit), so their 408/413/504 get the proxy's JSON error shape;
        //    upstream answers pass untouched.
        .layer(JsonErrorsLayer::new())
        // 7. A deadline for the whole exchange up to the response head,
        //    authentication included: a backstop a little longer than the
        //    proxy's own upstream timeout, which answers 504 first.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            options.upstream_timeout + Duration::from_secs(5),
        ))
        // 8. Authentication before anything looks at the body: a client
        //    without credentials costs one header check, never reaches the
        //    upstream, and learns nothing about limits. It strips the
        //    credential header and any client-sent user header, then
        //    sets the user header for the upstream.
        .layer(auth)
        // 9. tower-http's timeout needs a response body with a `Default`;
        //    the upstream's streaming body and the body limit's have none,
        //    so the body is boxed once here (still streamed, not buffered).
        .layer(MapResponseBodyLayer::new(BodyExt::boxed_unsync))
        // 10. The body limit applies to authenticated traffic: a declared
        //    Content-Length over it is answered 413 at once; a chunked body
        //    that grows past it is cut off and the proxy answers 413.
        .layer(RequestBodyLimitLayer::new(options.max_body))
        // 11. Last, the proxy: hop-by-hop headers out, Forwarded in, 502/504.
        .service(proxy);

    let (tx, rx) = tokio::sync::watch::channel(false);
    let header_timeout = options.header_timeout;
    let mut tasks = vec![tokio::spawn(serve(
        https,
        Some(TlsAcceptor::from(tls)),
        service.clone(),
        rx.clone(),
        header_timeout,
    ))];
    if let Some(http) = http {
        tasks.push(tokio::spawn(serve(http, None, service, rx, header_timeout)));
    }
    Ok(Gateway {
        addr,
        http_addr,
        shutdown: tx,
        tasks,
    })
}

/// Makes the client address the redirect layer resolved (a trusted proxy's
/// forwarded client) the request's [`PeerAddr`], which the proxy reports
/// upstream. From an untrusted peer it is the peer itself: no change. An
/// address that is itself a trusted proxy is not taken either, so that the
/// throttle, resolving again from the new peer, ends at the same client.
fn client_as_peer<B>(proxies: TrustedProxies) -> impl Fn(Request<B>) -> Request<B> + Clone {
    move |mut req: Request<B>| {
        use tower_perimeter::https::ClientInfo;
        let forwarded = req
            .extensions()
            .get::<ClientInfo>()
            .filter(|info| info.peer_is_trusted())
            .and_then(ClientInfo::addr)
            .filter(|ip| !proxies.is_trusted(*ip));
        if let Some(ip) = forwarded {
            // The forwarded headers carry no port worth keeping.
            req.extensions_mut()
                .insert(PeerAddr(SocketAddr::new(ip, 0)));
        }
        req
    }
}

/// Accepts connections (TLS when `acceptor` is given, plain HTTP when not)
/// and serves HTTP/1.1 or HTTP/2 on each until `shutdown` turns true; then
/// drains in-flight requests for at most [`DRAIN_GRACE`].
async fn serve<S, B>(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    service: S,
    shutdown: tokio::sync::watch::Receiver<bool>,
    header_timeout: Duration,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that sends half a request head and waits is dropped after
    // this long (hyper needs a timer for its header-read timeout), and an
    // HTTP/2 peer that stops answering pings is dropped too.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(header_timeout);
    let mut shutdown = shutdown;
    let stopped = async move {
        // Also ends when the sender is gone: nobody can stop it any more.
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors, say: back off briefly.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = service.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let transport = if acceptor.is_some() { Transport::Tls } else { Transport::Plain };
                let per_connection = tower::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    // Which listener the request came in on: the redirect
                    // and HSTS rely on it.
                    req.extensions_mut().insert(transport);
                    service.clone().oneshot(req)
                });
                let per_connection = TowerToHyperService::new(per_connection);
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            // A client that never finishes its handshake is dropped.
                            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                                Ok(Ok(tls)) => tls,
                                _ => return,
                            };
                            let conn = builder
                                .serve_connection(TokioIo::new(tls), per_connection)
                                .into_owned();
                            let _ = watcher.watch(conn).await;
                        }
                        None => {
                            let conn = builder
                                .serve_connection(TokioIo::new(tcp), per_connection)
                                .into_owned();
                            let _ = watcher.watch(conn).await;
                        }
                    }
                });
            }
            () = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_GRACE, graceful.shutdown()).await;
}

/// A random password for the demo user.
pub(crate) fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString as _};
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

// ---------------------------------------------------------------------------
// One runtime per core
// ---------------------------------------------------------------------------

/// `count` listening sockets on `addr` sharing its port through
/// `SO_REUSEPORT`, so that the kernel spreads connections over them; for
/// port 0, a single socket. Must be called inside a tokio runtime.
#[cfg(unix)]
pub(crate) fn reuseport_listeners(
    addr: SocketAddr,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() == 0 {
        // An ephemeral port: one socket without SO_REUSEPORT, because the
        // kernel may hand a port-0 bind with SO_REUSEPORT a port that another
        // process of the same user already listens on with it, and the two
        // would then share connections.
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        return Ok(vec![listener]);
    }
    let mut listeners = Vec::with_capacity(count);
    let mut bind_to = addr;
    for _ in 0..count.max(1) {
        let socket = if bind_to.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(bind_to)?;
        let listener = socket.listen(1024)?;
        bind_to = listener.local_addr()?;
        listeners.push(listener.into_std()?);
    }
    Ok(listeners)
}

/// Without `SO_REUSEPORT`: one listening socket.
#[cfg(not(unix))]
pub(crate) fn reuseport_listeners(
    addr: SocketAddr,
    _count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(vec![listener])
}

/// Gateways running on worker threads, one single-threaded runtime each.
#[derive(Debug)]
pub(crate) struct Workers {
    /// The HTTPS address they share.
    pub(crate) addr: SocketAddr,
    /// The plain-HTTP address they share, if any.
    pub(crate) http_addr: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Stops every worker after it has drained its in-flight requests.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        for thread in self.threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// One worker's listening sockets: HTTPS, and plain HTTP if served.
pub(crate) type WorkerListeners = (std::net::TcpListener, Option<std::net::TcpListener>);

/// Runs one gateway per pair of listeners, each on its own thread with a
/// single-threaded runtime: like nginx's worker processes, a connection
/// stays on one thread from accept to close, with no cross-thread wake-ups.
/// The throttle's counters are shared by all of them.
///
/// # Errors
///
/// When a worker cannot start (a [`ConfigError`] from a layer's builder).
pub(crate) fn start_workers(
    listeners: Vec<WorkerListeners>,
    tls: Arc<rustls::ServerConfig>,
    options: &GatewayOptions,
    store: CredentialStore,
) -> Result<Workers, BoxError> {
    let first = listeners.first().ok_or("no listening socket")?;
    let addr = first.0.local_addr()?;
    let http_addr = first
        .1
        .as_ref()
        .map(std::net::TcpListener::local_addr)
        .transpose()?;
    let throttle = build_throttle(options)?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut threads = Vec::with_capacity(listeners.len());
    for (index, (https, http)) in listeners.into_iter().enumerate() {
        let (tls, options, store, throttle) = (
            tls.clone(),
            options.clone(),
            store.clone(),
            throttle.clone(),
        );
        let (mut stop_rx, ready_tx) = (stop_rx.clone(), ready_tx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("gateway-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let started = (|| {
                        let https = TcpListener::from_std(https)?;
                        let http = http.map(TcpListener::from_std).transpose()?;
                        start_gateway_on(https, http, tls, &options, store, throttle)
                    })();
                    let gateway = match started {
                        Ok(gateway) => gateway,
                        Err(err) => {
                            let _ = ready_tx.send(Err(err.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                    gateway.shutdown().await;
                });
            })?;
        threads.push(thread);
    }
    drop(ready_tx);
    let workers = Workers {
        addr,
        http_addr,
        stop,
        threads,
    };
    for _ in 0..workers.threads.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(message.into()),
            Err(_) => return Err("a gateway worker stopped while starting".into()),
        }
    }
    Ok(workers)
}
