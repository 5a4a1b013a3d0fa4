//! End-to-end tests of the gateway example: the gateway and the stand-in Web
//! Service run in-process on ephemeral loopback ports and are driven by a
//! real HTTPS client (hyper + rustls trusting the generated certificate).
#![cfg(all(feature = "proxy", feature = "basic-auth", feature = "https"))]

#[path = "../examples/gateway/app.rs"]
mod app;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tower_perimeter::basic_auth::{htpasswd_bcrypt_line, CredentialStore, HtpasswdReloader, Users};

mod common;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ClientBody = BoxBody<Bytes, BoxError>;
type HttpsClient = Client<HttpsConnector<HttpConnector>, ClientBody>;

const USER: &str = "demo";
const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    dir: TempDir,
    htpasswd: PathBuf,
    store: CredentialStore,
    gateway: app::Gateway,
    standin: Option<app::StandIn>,
}

/// Cost 4 keeps debug-build tests quick; the cost does not change behaviour.
fn htpasswd_line(user: &str, password: &str) -> String {
    htpasswd_bcrypt_line(user, password, 4).unwrap()
}

async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A gateway in front of `upstream` (or of a fresh stand-in).
async fn start(upstream: Option<String>, options: app::GatewayOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let certs = app::self_signed(dir.path()).unwrap();
    let tls = app::load_tls(&certs.cert, &certs.key).unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("{}\n", htpasswd_line(USER, PASSWORD))).unwrap();
    let store = CredentialStore::new(Users::from_htpasswd_file(&htpasswd).unwrap());

    let (upstream, standin) = match upstream {
        Some(url) => (url, None),
        None => {
            let standin = app::start_standin(loopback().await).unwrap();
            (format!("http://{}", standin.addr), Some(standin))
        }
    };
    let options = app::GatewayOptions {
        upstream,
        ..options
    };
    // Every fixture serves plain HTTP too, as the binary does by default.
    let gateway = app::start_gateway_with_http(
        loopback().await,
        Some(loopback().await),
        tls,
        &options,
        store.clone(),
    )
    .unwrap();
    Fixture {
        dir,
        htpasswd,
        store,
        gateway,
        standin,
    }
}

async fn start_default() -> Fixture {
    start(None, app::GatewayOptions::default()).await
}

impl Fixture {
    fn hits(&self) -> u64 {
        self.standin.as_ref().unwrap().log.hits()
    }

    fn upstream_headers(&self) -> http::HeaderMap {
        self.standin.as_ref().unwrap().log.last_headers().unwrap()
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.gateway.addr.port())
    }

    fn http_port(&self) -> u16 {
        self.gateway.http_addr.unwrap().port()
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port())
    }

    fn client(&self, http2: bool) -> HttpsClient {
        https_client(&self.cert(), http2)
    }
}

fn https_client(cert: &Path, http2: bool) -> HttpsClient {
    let pem = std::fs::read(cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    Client::builder(TokioExecutor::new()).build(connector)
}

fn full(data: impl Into<Bytes>) -> ClientBody {
    Full::new(data.into()).map_err(|e| match e {}).boxed()
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).unwrap()
}

struct Answer {
    status: StatusCode,
    version: Version,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn send(client: &HttpsClient, req: Request<ClientBody>) -> Answer {
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let version = res.version();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        version,
        headers,
        body,
    }
}

fn get(url: &str, auth: Option<HeaderValue>) -> Request<ClientBody> {
    let mut req = Request::get(url).body(full(Bytes::new())).unwrap();
    if let Some(auth) = auth {
        req.headers_mut().insert(header::AUTHORIZATION, auth);
    }
    req
}

fn assert_json_error(answer: &Answer, status: u16, error: &str) {
    assert_eq!(answer.status.as_u16(), status);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        answer.json(),
        serde_json::json!({ "error": error, "status": status })
    );
}

#[tokio::test]
async fn right_credentials_reach_upstream_without_authorization() {
    let fx = start_default().await;
    let answer = send(
        &fx.client(false),
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["version"], app::STANDIN_VERSION);
    assert_eq!(fx.hits(), 1);
    let seen = fx.upstream_headers();
    assert!(!seen.contains_key(header::AUTHORIZATION));
    assert_eq!(seen[app::USER_HEADER], USER);
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    let forwarded = seen[header::FORWARDED].to_str().unwrap();
    assert!(
        forwarded.starts_with("for=127.0.0.1;proto=https"),
        "{forwarded}"
    );
    assert!(answer.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn answers_carry_hsts_for_a_named_host_even_rejections() {
    let fx = start_default().await;
    let client = fx.client(false);
    for auth in [Some(basic(USER, PASSWORD)), None] {
        let mut req = get(&fx.url("/api/ping"), auth);
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("face.example"));
        let answer = send(&client, req).await;
        assert_eq!(
            answer.headers[header::STRICT_TRANSPORT_SECURITY],
            format!("max-age={}", app::HSTS_MAX_AGE.as_secs())
        );
    }
}

#[tokio::test]
async fn http2_is_negotiated_through_alpn() {
    let fx = start_default().await;
    let answer = send(
        &fx.client(true),
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.version, Version::HTTP_2);
    assert!(!fx.upstream_headers().contains_key(header::AUTHORIZATION));
}

#[tokio::test]
async fn wrong_missing_and_malformed_credentials_get_401_and_never_reach_upstream() {
    let fx = start_default().await;
    let client = fx.client(false);
    let bad = [
        None,
        Some(basic(USER, "wrong password")),
        Some(basic("mallory", PASSWORD)),
        Some(HeaderValue::from_static("Basic !!!not-base64!!!")),
        Some(HeaderValue::from_static("Bearer abc.def.ghi")),
        Some(HeaderValue::from_static("Basic")),
        Some(
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("no-colon")
            ))
            .unwrap(),
        ),
    ];
    for auth in bad {
        let answer = send(&client, get(&fx.url("/api/ping"), auth.clone())).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        let challenge = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("realm=\"Face SDK\""), "{challenge}");
    }
    assert_eq!(fx.hits(), 0);
}

#[tokio::test]
async fn password_guessing_is_throttled_with_429_before_the_upstream() {
    let fx = start_default().await;
    let client = fx.client(false);
    let mut statuses = Vec::new();
    for attempt in 0..8 {
        let guess = format!("guess {attempt}");
        let answer = send(
            &client,
            get(&fx.url("/api/ping"), Some(basic(USER, &guess))),
        )
        .await;
        statuses.push(answer.status);
    }
    // The default policy allows five failures per user name, then locks.
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(statuses[7], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // Locked, even the right password is refused for now.
    let answer = send(
        &client,
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(fx.hits(), 0);
}

#[tokio::test]
async fn spoofed_user_header_does_not_reach_upstream() {
    let fx = start_default().await;
    let client = fx.client(false);

    let mut req = get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD)));
    req.headers_mut()
        .insert(app::USER_HEADER, HeaderValue::from_static("admin"));
    assert_eq!(send(&client, req).await.status, StatusCode::OK);
    let seen = fx.upstream_headers();
    let users: Vec<_> = seen.get_all(app::USER_HEADER).iter().collect();
    assert_eq!(users, [USER]);

    // Without credentials the spoofed header gets nowhere at all.
    let mut req = get(&fx.url("/api/ping"), None);
    req.headers_mut()
        .insert(app::USER_HEADER, HeaderValue::from_static("admin"));
    assert_eq!(send(&client, req).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fx.hits(), 1);
}

#[tokio::test]
async fn hop_by_hop_and_client_forwarded_headers_are_not_passed_on() {
    let fx = start_default().await;
    let mut req = get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD)));
    let h = req.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("x-private"));
    h.insert(
        "x-private",
        HeaderValue::from_static("for the next hop only"),
    );
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
    h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    h.insert(header::FORWARDED, HeaderValue::from_static("for=6.6.6.6"));
    h.insert("x-kept", HeaderValue::from_static("yes"));
    assert_eq!(send(&fx.client(false), req).await.status, StatusCode::OK);

    let seen = fx.upstream_headers();
    for gone in ["x-private", "keep-alive", "te", "proxy-connection"] {
        assert!(!seen.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(seen["x-kept"], "yes");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert!(!seen[header::FORWARDED]
        .to_str()
        .unwrap()
        .contains("6.6.6.6"));
}

#[tokio::test]
async fn upstream_down_gives_502_and_the_pool_recovers_when_it_returns() {
    // A port that was free a moment ago: nothing listens on it.
    let parked = loopback().await;
    let addr = parked.local_addr().unwrap();
    drop(parked);
    let fx = start(
        Some(format!("http://{addr}")),
        app::GatewayOptions::default(),
    )
    .await;
    let client = fx.client(false);

    let answer = send(
        &client,
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_json_error(&answer, 502, "bad_gateway");

    // The upstream comes back on the same port.
    let standin = app::start_standin(TcpListener::bind(addr).await.unwrap()).unwrap();
    let answer = send(
        &client,
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(standin.log.hits(), 1);

    // It goes away again, with pooled connections to it: 502, not a hang.
    standin.stop();
    let answer = send(
        &client,
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_json_error(&answer, 502, "bad_gateway");
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    let listener = loopback().await;
    let addr = listener.local_addr().unwrap();
    let slow = axum::Router::new().route(
        "/api/ping",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late"
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, slow).await });
    let fx = start(
        Some(format!("http://{addr}")),
        app::GatewayOptions {
            upstream_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await;
    let answer = send(
        &fx.client(false),
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_json_error(&answer, 504, "gateway_timeout");
    server.abort();
}

#[tokio::test]
async fn declared_body_over_the_limit_gets_413_before_the_upstream() {
    let fx = start(
        None,
        app::GatewayOptions {
            max_body: 1024,
            ..Default::default()
        },
    )
    .await;
    let mut req = Request::post(fx.url("/api/echo"))
        .body(full(vec![b'x'; 4096]))
        .unwrap();
    req.headers_mut()
        .insert(header::AUTHORIZATION, basic(USER, PASSWORD));
    let answer = send(&fx.client(false), req).await;
    assert_json_error(&answer, 413, "payload_too_large");
    assert!(answer.headers.contains_key("x-request-id"));
    assert_eq!(fx.hits(), 0);
}

#[tokio::test]
async fn streamed_body_growing_over_the_limit_gets_413() {
    let fx = start(
        None,
        app::GatewayOptions {
            max_body: 64 * 1024,
            ..Default::default()
        },
    )
    .await;
    // No Content-Length: sixteen 16 KiB chunks, sent as they come.
    let chunks =
        (0..16).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'y'; 16 * 1024]))));
    let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
    let mut req = Request::post(fx.url("/api/echo")).body(body).unwrap();
    req.headers_mut()
        .insert(header::AUTHORIZATION, basic(USER, PASSWORD));
    let answer = send(&fx.client(false), req).await;
    assert_json_error(&answer, 413, "payload_too_large");
}

#[tokio::test]
async fn five_megabyte_body_round_trips_intact() {
    let fx = start_default().await;
    let client = fx.client(true);
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut req = Request::post(fx.url("/api/echo"))
        .body(full(data.clone()))
        .unwrap();
    req.headers_mut()
        .insert(header::AUTHORIZATION, basic(USER, PASSWORD));
    let answer = send(&client, req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.len(), data.len());
    assert!(answer.body == data, "body changed on the way");

    // The real API's shape: a base64 image inside JSON, megabytes of it.
    let image = base64::engine::general_purpose::STANDARD.encode(&data[..3 * 1024 * 1024]);
    let mut req = Request::post(fx.url("/api/detect"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(
            serde_json::to_vec(&serde_json::json!({ "image": image })).unwrap(),
        ))
        .unwrap();
    req.headers_mut()
        .insert(header::AUTHORIZATION, basic(USER, PASSWORD));
    let answer = send(&client, req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["code"], 0);
    assert_eq!(answer.json()["image_bytes"], 3 * 1024 * 1024);
}

#[tokio::test]
async fn stand_in_answers_bad_json_with_a_code() {
    let fx = start_default().await;
    let mut req = Request::post(fx.url("/api/match"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(r#"{"image1":"aGVsbG8=","image2":"not base64!"}"#))
        .unwrap();
    req.headers_mut()
        .insert(header::AUTHORIZATION, basic(USER, PASSWORD));
    let answer = send(&fx.client(false), req).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["code"], 1);
}

#[tokio::test]
async fn htpasswd_reload_takes_effect() {
    let fx = start_default().await;
    let client = fx.client(false);
    std::fs::write(
        &fx.htpasswd,
        format!("{}\n", htpasswd_line("alice", "wonderland")),
    )
    .unwrap();
    // Before the reload the old users still hold.
    let answer = send(
        &client,
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);

    let count = HtpasswdReloader::new(&fx.htpasswd, fx.store.clone())
        .reload()
        .unwrap();
    assert_eq!(count, 1);
    let answer = send(
        &client,
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = send(
        &client,
        get(&fx.url("/api/ping"), Some(basic("alice", "wonderland"))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn failed_reload_keeps_the_previous_users() {
    let fx = start_default().await;
    std::fs::write(&fx.htpasswd, "demo:$2y$04$tooshort\n").unwrap();
    let err = HtpasswdReloader::new(&fx.htpasswd, fx.store.clone())
        .reload()
        .unwrap_err();
    assert_eq!(err.line(), Some(1));
    let answer = send(
        &fx.client(false),
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn proxy_auth_mode_answers_407_and_strips_proxy_authorization() {
    let fx = start(
        None,
        app::GatewayOptions {
            proxy_auth: true,
            ..Default::default()
        },
    )
    .await;
    let client = fx.client(false);
    let answer = send(&client, get(&fx.url("/api/ping"), None)).await;
    assert_eq!(answer.status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert!(answer.headers.contains_key(header::PROXY_AUTHENTICATE));
    assert_eq!(fx.hits(), 0);

    let mut req = get(&fx.url("/api/ping"), None);
    req.headers_mut()
        .insert(header::PROXY_AUTHORIZATION, basic(USER, PASSWORD));
    assert_eq!(send(&client, req).await.status, StatusCode::OK);
    let seen = fx.upstream_headers();
    assert!(!seen.contains_key(header::PROXY_AUTHORIZATION));
    assert_eq!(seen[app::USER_HEADER], USER);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let listener = loopback().await;
    let addr = listener.local_addr().unwrap();
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
    let slowish = axum::Router::new().route(
        "/api/ping",
        axum::routing::get(move || {
            let entered_tx = entered_tx.clone();
            async move {
                if let Some(tx) = entered_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                "finished"
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, slowish).await });
    let fx = start(
        Some(format!("http://{addr}")),
        app::GatewayOptions::default(),
    )
    .await;
    let client = fx.client(false);
    let url = fx.url("/api/ping");
    let in_flight =
        tokio::spawn(async move { send(&client, get(&url, Some(basic(USER, PASSWORD)))).await });
    // Shut down once the request is inside the upstream.
    entered_rx.await.unwrap();
    let gateway_addr = fx.gateway.addr;
    fx.gateway.shutdown().await;
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"finished");
    // After the drain the port no longer accepts connections.
    assert!(tokio::net::TcpStream::connect(gateway_addr).await.is_err());
    server.abort();
}

/// `ReverseProxy` in front of an `https` upstream (here a second gateway)
/// trusts what its `rustls::ClientConfig` trusts, and nothing else.
#[tokio::test]
async fn https_upstream_is_reached_with_a_custom_client_config() {
    use tower::ServiceExt as _;
    use tower_perimeter::proxy::ReverseProxy;

    let inner = start_default().await;
    let pem = std::fs::read(inner.cert()).unwrap();
    let trusting = |trust: bool| {
        let mut roots = rustls::RootCertStore::empty();
        if trust {
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                roots.add(cert.unwrap()).unwrap();
            }
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    };
    let upstream = format!("https://127.0.0.1:{}", inner.gateway.addr.port());
    let request = || {
        Request::get("/api/ping")
            .header(header::AUTHORIZATION, basic(USER, PASSWORD))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let proxy = ReverseProxy::builder()
        .upstream(&upstream)
        .unwrap()
        .tls_config(trusting(true))
        .build()
        .unwrap();
    let res = proxy.oneshot(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(inner.hits(), 1);

    let proxy = ReverseProxy::builder()
        .upstream(&upstream)
        .unwrap()
        .tls_config(trusting(false))
        .build()
        .unwrap();
    let res = proxy.oneshot(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(inner.hits(), 1);
}

// ---------------------------------------------------------------------------
// The example binary, run as a new user would.
// ---------------------------------------------------------------------------

/// The built example, built once per test run with this test's features
/// (cargo does nothing when it is up to date): a binary left over from a
/// build with other features would lack options the tests use.
fn example_binary() -> PathBuf {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/gateway-<hash> -> target/<profile>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let binary = profile_dir
        .join("examples")
        .join(format!("gateway{}", std::env::consts::EXE_SUFFIX));
    if !*built {
        // The features this test was built with, so that cargo reuses the
        // library it already built.
        let features: Vec<&str> = [
            ("basic-auth", cfg!(feature = "basic-auth")),
            ("csp", cfg!(feature = "csp")),
            ("https", cfg!(feature = "https")),
            ("pinning", cfg!(feature = "pinning")),
            ("proxy", cfg!(feature = "proxy")),
            ("redis", cfg!(feature = "redis")),
            ("axum", cfg!(feature = "axum")),
            ("tracing", cfg!(feature = "tracing")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--example",
                "gateway",
                "--no-default-features",
                "--features",
            ])
            .arg(features.join(","))
            .args(
                (profile_dir.file_name() == Some(std::ffi::OsStr::new("release")))
                    .then_some("--release"),
            )
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build --example gateway failed");
        *built = true;
    }
    assert!(binary.exists(), "{} not found", binary.display());
    binary
}

#[test]
fn binary_help_lists_every_option() {
    let out = Command::new(example_binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--https",
        "--upstream",
        "--htpasswd",
        "--realm",
        "--cert",
        "--key",
        "--proxy-auth",
        "--max-body",
        "--upstream-timeout",
        "--http",
        "--no-http",
        "--public-host",
        "--trusted-proxy",
        #[cfg(feature = "pinning")]
        "--upstream-pin",
        #[cfg(feature = "pinning")]
        "--allow-single-pin",
        #[cfg(feature = "redis")]
        "--throttle-redis",
        #[cfg(feature = "redis")]
        "--throttle-fail-closed",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
}

#[test]
fn binary_with_missing_htpasswd_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-htpasswd");
    let out = Command::new(example_binary())
        .args(["--https", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--htpasswd")
        .arg(&missing)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-htpasswd"), "{stderr}");
}

#[test]
fn binary_with_bad_htpasswd_line_exits_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(
        &file,
        format!("{}\nthis line has no colon\n", htpasswd_line("ok", "pw")),
    )
    .unwrap();
    let out = Command::new(example_binary())
        .arg("--htpasswd")
        .arg(&file)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn binary_with_bad_option_value_exits_2() {
    let out = Command::new(example_binary())
        .args(["--https", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--https"), "{stderr}");
}

/// Sends `signal` to the child process.
#[cfg(unix)]
fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Starts the binary against an upstream that is not there (no stand-in,
/// so the fixed stand-in port is not needed), reads the banner, then sends
/// SIGTERM.
#[cfg(unix)]
#[test]
fn binary_prints_curl_commands_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(example_binary())
        .args(["--https", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--upstream", "http://127.0.0.1:9"])
        .arg("--out-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("SIGHUP") {
            break;
        }
    }
    assert!(banner.contains("user:        demo"), "{banner}");
    assert!(banner.contains("curl --cacert"), "{banner}");
    assert!(dir.path().join("cert.pem").exists());
    let htpasswd = std::fs::read_to_string(dir.path().join("htpasswd")).unwrap();
    assert!(htpasswd.starts_with("demo:$2"), "not bcrypt");

    signal(&child, rustix::process::Signal::TERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// SIGHUP makes the running binary re-read its htpasswd file.
#[cfg(unix)]
#[tokio::test]
async fn binary_reloads_htpasswd_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("{}\n", htpasswd_line("alice", "pw-a"))).unwrap();
    // The upstream is not there: an authenticated request gets 502, a
    // rejected one 401, which is all this test needs to tell them apart.
    let mut child = Command::new(example_binary())
        .args(["--https", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--upstream", "http://127.0.0.1:9"])
        // Polling with bob's password counts as failed logins until the
        // reload lands; no throttle, so that they cannot lock bob out.
        .arg("--no-throttle")
        .arg("--htpasswd")
        .arg(&htpasswd)
        .arg("--out-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("Face SDK gateway on https://localhost:") {
                return rest.split(' ').next().unwrap().parse::<u16>().unwrap();
            }
        }
        panic!("no banner");
    })
    .await
    .unwrap();
    let client = https_client(&dir.path().join("cert.pem"), false);
    let url = format!("https://127.0.0.1:{port}/api/ping");

    assert_eq!(
        send(&client, get(&url, Some(basic("bob", "pw-b"))))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    std::fs::write(&htpasswd, format!("{}\n", htpasswd_line("bob", "pw-b"))).unwrap();
    signal(&child, rustix::process::Signal::HUP);
    // The reload happens on the binary's own schedule: ask until it shows,
    // for at most ten seconds.
    let mut status = StatusCode::UNAUTHORIZED;
    for _ in 0..100 {
        status = send(&client, get(&url, Some(basic("bob", "pw-b"))))
            .await
            .status;
        if status != StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::BAD_GATEWAY, "bob still rejected");
    assert_eq!(
        send(&client, get(&url, Some(basic("alice", "pw-a"))))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    signal(&child, rustix::process::Signal::TERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

// ---------------------------------------------------------------------------
// Plain HTTP: redirect to HTTPS, credentials refused, HSTS on HTTPS only.
// ---------------------------------------------------------------------------

type PlainClient = Client<HttpConnector, Full<Bytes>>;

fn plain_client() -> PlainClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

async fn send_plain(req: Request<Full<Bytes>>) -> Answer {
    let res = plain_client().request(req).await.unwrap();
    let status = res.status();
    let version = res.version();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        version,
        headers,
        body,
    }
}

/// A client that follows redirects (tower-http's `FollowRedirect`, which
/// drops credentials on a cross-origin hop) and, like a browser with a saved
/// password for the HTTPS site, adds credentials to `https` requests only.
#[tokio::test]
async fn browser_following_the_http_redirect_lands_on_https_with_path_and_query() {
    use tower::{ServiceBuilder, ServiceExt as _};
    use tower_http::follow_redirect::{FollowRedirectLayer, RequestUri};

    let fx = start_default().await;
    let pem = std::fs::read(fx.cert()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let browser = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .map_request(|mut req: Request<Full<Bytes>>| {
            if req.uri().scheme_str() == Some("https") {
                req.headers_mut()
                    .insert(header::AUTHORIZATION, basic(USER, PASSWORD));
            }
            req
        })
        .service(client);

    let start = fx.http_url("/api/ping?probe=1&x=%20y");
    let req = Request::get(&start).body(Full::new(Bytes::new())).unwrap();
    let res = browser.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let landed = &res.extensions().get::<RequestUri>().unwrap().0;
    assert_eq!(landed.to_string(), fx.url("/api/ping?probe=1&x=%20y"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["version"], app::STANDIN_VERSION);
    // Exactly one request reached the upstream, with the same target.
    assert_eq!(fx.hits(), 1);
    let seen = fx.standin.as_ref().unwrap().log.last_uri().unwrap();
    assert_eq!(seen.to_string(), "/api/ping?probe=1&x=%20y");
    assert_eq!(fx.upstream_headers()["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn plain_http_redirect_keeps_path_query_and_method_kind() {
    let fx = start_default().await;
    let get = Request::get(fx.http_url("/api/ping?a=1"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = send_plain(get).await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        answer.headers[header::LOCATION],
        fx.url("/api/ping?a=1").as_str()
    );
    // A POST without credentials is redirected with 308, which keeps the
    // method and body, and the upstream has seen nothing yet.
    let post = Request::post(fx.http_url("/api/detect"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let answer = send_plain(post).await;
    assert_eq!(answer.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        answer.headers[header::LOCATION],
        fx.url("/api/detect").as_str()
    );
    assert_eq!(fx.hits(), 0);
}

#[tokio::test]
async fn post_with_credentials_over_http_is_refused_and_never_reaches_upstream() {
    let fx = start_default().await;
    // One request over HTTPS, so the count starts from a known value.
    let answer = send(
        &fx.client(false),
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(fx.hits(), 1);

    let credentials = [
        (header::AUTHORIZATION, basic(USER, PASSWORD)),
        (header::AUTHORIZATION, basic(USER, "a wrong one")),
        (header::PROXY_AUTHORIZATION, basic(USER, PASSWORD)),
        (header::COOKIE, HeaderValue::from_static("session=abc")),
    ];
    for (name, value) in credentials {
        let req = Request::post(fx.http_url("/api/detect"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(name.clone(), value)
            .body(Full::new(Bytes::from_static(br#"{"image":"aGVsbG8="}"#)))
            .unwrap();
        let answer = send_plain(req).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{name}");
        assert!(!answer.headers.contains_key(header::LOCATION), "{name}");
        let text = String::from_utf8(answer.body.to_vec()).unwrap();
        assert!(text.contains("plain HTTP"), "{text}");
    }
    // A GET with the right password over HTTP is refused the same way.
    let req = Request::get(fx.http_url("/api/ping"))
        .header(header::AUTHORIZATION, basic(USER, PASSWORD))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send_plain(req).await.status, StatusCode::FORBIDDEN);
    assert_eq!(fx.hits(), 1);
}

#[tokio::test]
async fn hsts_is_on_https_answers_and_never_on_plain_http() {
    let fx = start(
        None,
        app::GatewayOptions {
            public_hosts: vec!["face.example".to_owned()],
            ..Default::default()
        },
    )
    .await;
    let expected = format!("max-age={}", app::HSTS_MAX_AGE.as_secs());
    for auth in [Some(basic(USER, PASSWORD)), None] {
        let mut req = get(&fx.url("/api/ping"), auth);
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("face.example"));
        let answer = send(&fx.client(false), req).await;
        assert_eq!(answer.headers[header::STRICT_TRANSPORT_SECURITY], expected);
    }

    let host = format!("face.example:{}", fx.http_port());
    let redirect = Request::get(fx.http_url("/api/ping"))
        .header(header::HOST, &host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = send_plain(redirect).await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        answer.headers[header::LOCATION],
        format!("https://face.example:{}/api/ping", fx.gateway.addr.port()).as_str()
    );
    assert!(!answer
        .headers
        .contains_key(header::STRICT_TRANSPORT_SECURITY));

    let refused = Request::get(fx.http_url("/api/ping"))
        .header(header::HOST, &host)
        .header(header::AUTHORIZATION, basic(USER, PASSWORD))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = send_plain(refused).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(!answer
        .headers
        .contains_key(header::STRICT_TRANSPORT_SECURITY));
    assert_eq!(fx.hits(), 1);
}

#[tokio::test]
async fn hostile_host_on_http_gets_400_and_never_a_redirect() {
    let fx = start_default().await;
    let port = fx.http_port();
    let hostile = [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("localhost@evil.example:{port}"),
        format!("evil.example#@localhost:{port}"),
        format!("localhost.evil.example:{port}"),
        "localhost:0".to_owned(),
        "localhost:99999".to_owned(),
        "2130706433".to_owned(),
        "[::1".to_owned(),
        "a".repeat(300),
    ];
    for host in &hostile {
        let req = Request::get(fx.http_url("/api/ping"))
            .header(header::HOST, host.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let answer = send_plain(req).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{host}");
        assert!(!answer.headers.contains_key(header::LOCATION), "{host}");
    }
    // Forwarded headers from an untrusted peer change nothing either.
    let req = Request::get(fx.http_url("/api/ping"))
        .header(header::HOST, "localhost")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = send_plain(req).await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        answer.headers[header::LOCATION],
        format!("https://localhost:{}/api/ping", fx.gateway.addr.port()).as_str()
    );
    assert_eq!(fx.hits(), 0);
}

/// A TLS-terminating proxy in front of the plain listener says "https" with
/// `X-Forwarded-Proto`; believed only from a `--trusted-proxy` peer, which
/// the throttle then also reads the client address from.
#[tokio::test]
async fn trusted_proxy_headers_are_believed_only_from_trusted_peers() {
    let untrusted = start_default().await;
    let behind_proxy = |fx: &Fixture, auth: HeaderValue, client: &'static str| {
        Request::get(fx.http_url("/api/ping"))
            .header(header::HOST, "localhost")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-for", client)
            .header(header::AUTHORIZATION, auth)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let answer = send_plain(behind_proxy(
        &untrusted,
        basic(USER, PASSWORD),
        "203.0.113.7",
    ))
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(untrusted.hits(), 0);

    let trusted = start(
        None,
        app::GatewayOptions {
            trusted_proxies: vec!["127.0.0.0/8".to_owned()],
            ..Default::default()
        },
    )
    .await;
    let answer = send_plain(behind_proxy(&trusted, basic(USER, PASSWORD), "203.0.113.7")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(trusted.hits(), 1);
    // The upstream learns the forwarded client, not the proxy.
    assert_eq!(trusted.upstream_headers()["x-forwarded-for"], "203.0.113.7");

    // Ten failures from one forwarded client lock that client out, under
    // different user names (so the per-user limit is not what trips)...
    for attempt in 0..12 {
        let user = format!("user{attempt}");
        let _ = send_plain(behind_proxy(&trusted, basic(&user, "x"), "203.0.113.66")).await;
    }
    let answer = send_plain(behind_proxy(
        &trusted,
        basic(USER, PASSWORD),
        "203.0.113.66",
    ))
    .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // ...and not another client behind the same proxy.
    let answer = send_plain(behind_proxy(&trusted, basic(USER, PASSWORD), "203.0.113.7")).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_public_host_or_trusted_proxy_is_a_start_up_error() {
    for options in [
        app::GatewayOptions {
            public_hosts: vec!["user@face.example".to_owned()],
            ..Default::default()
        },
        app::GatewayOptions {
            trusted_proxies: vec!["10.0.0.0/99".to_owned()],
            ..Default::default()
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let certs = app::self_signed(dir.path()).unwrap();
        let tls = app::load_tls(&certs.cert, &certs.key).unwrap();
        let store = CredentialStore::new(Users::builder().build());
        let err = app::start_gateway_with_http(
            loopback().await,
            Some(loopback().await),
            tls,
            &options,
            store,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("--public-host") || message.contains("--trusted-proxy"),
            "{message}"
        );
    }
}

/// Runs curl against the gateway's plain listener.
fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-L", "-w", "\n%{http_code} %{url_effective}"])
        .args(args)
        .output()
        .expect("run curl");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (body, last) = stdout.rsplit_once('\n').unwrap();
    (body.to_owned(), last.to_owned())
}

/// curl sends `-u` credentials with the first request, to the plain
/// listener: they are refused there, and the upstream never sees them.
/// Credentials from a netrc file with `--anyauth` are sent only after a
/// challenge, which comes from HTTPS: that ends at the upstream.
#[tokio::test]
#[ignore = "needs curl"]
async fn curl_following_the_redirect_authenticates_only_over_https() {
    let fx = start_default().await;
    let cert = fx.cert();
    let cert = cert.to_str().unwrap();
    let url = format!("http://localhost:{}/api/ping", fx.http_port());
    let credentials = format!("{USER}:{PASSWORD}");
    let (body, last) = tokio::task::spawn_blocking({
        let (url, cert) = (url.clone(), cert.to_owned());
        move || curl(&["--cacert", &cert, &url, "-u", &credentials])
    })
    .await
    .unwrap();
    assert_eq!(last, format!("403 {url}"), "{body}");
    assert!(body.contains("change the password"), "{body}");
    assert_eq!(fx.hits(), 0);

    let netrc = fx.dir.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine localhost login {USER} password \"{PASSWORD}\"\n"),
    )
    .unwrap();
    let netrc = netrc.to_str().unwrap().to_owned();
    let (body, last) = tokio::task::spawn_blocking({
        let (url, cert) = (url.clone(), cert.to_owned());
        move || curl(&["--cacert", &cert, "--anyauth", "--netrc-file", &netrc, &url])
    })
    .await
    .unwrap();
    assert_eq!(
        last,
        format!("200 https://localhost:{}/api/ping", fx.gateway.addr.port()),
        "{body}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], app::STANDIN_VERSION);
    assert_eq!(fx.hits(), 1);
}

// ---------------------------------------------------------------------------
// A pinned https upstream (`--upstream-pin`).
// ---------------------------------------------------------------------------

/// The stand-in behind TLS with a new self-signed certificate for
/// `127.0.0.1` and `localhost`, and that certificate's pin.
#[cfg(feature = "pinning")]
async fn pinned_standin() -> (app::StandIn, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let pin = tower_perimeter::pinning::Pin::from_certificate_der(certified.cert.der())
        .unwrap()
        .to_okhttp();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let standin = app::start_standin_tls(loopback().await, Arc::new(config)).unwrap();
    (standin, pin)
}

/// A pin of some other key.
#[cfg(feature = "pinning")]
fn other_pin() -> String {
    let other = rcgen::generate_simple_self_signed(vec!["other.example".to_owned()]).unwrap();
    tower_perimeter::pinning::Pin::from_certificate_der(other.cert.der())
        .unwrap()
        .to_okhttp()
}

#[cfg(feature = "pinning")]
#[tokio::test]
async fn pinned_https_upstream_with_the_right_pin_is_reached() {
    let (standin, pin) = pinned_standin().await;
    // The key in use plus a backup, in two of the accepted spellings.
    let backup = other_pin().replace("sha256/", "sha256//");
    let fx = start(
        Some(format!("https://127.0.0.1:{}", standin.addr.port())),
        app::GatewayOptions {
            upstream_pins: vec![pin, backup],
            ..Default::default()
        },
    )
    .await;
    let answer = send(
        &fx.client(false),
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["version"], app::STANDIN_VERSION);
    assert_eq!(standin.log.hits(), 1);
    assert_eq!(standin.log.last_headers().unwrap()[app::USER_HEADER], USER);
}

/// `#[tokio::test]` runs everything (the gateway, its proxy's connection
/// tasks) on this thread, so a thread-local subscriber sees the events.
#[cfg(all(feature = "pinning", feature = "tracing"))]
#[tokio::test]
async fn wrong_upstream_pins_give_502_log_the_mismatch_and_the_upstream_sees_nothing() {
    let (captured, _guard) = common::LogCapture::install(tracing::Level::WARN);

    let (standin, right) = pinned_standin().await;
    let fx = start(
        Some(format!("https://127.0.0.1:{}", standin.addr.port())),
        app::GatewayOptions {
            upstream_pins: vec![other_pin(), other_pin()],
            ..Default::default()
        },
    )
    .await;
    let answer = send(
        &fx.client(false),
        get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_json_error(&answer, 502, "bad_gateway");
    assert_eq!(standin.log.hits(), 0);

    let log = captured.text();
    let line = log
        .lines()
        .find(|l| l.contains("reason=\"pin_mismatch\""))
        .unwrap_or_else(|| panic!("no pin_mismatch event in:\n{log}"));
    assert!(line.contains("127.0.0.1"), "{line}");
    // The event names the upstream's actual key, for the operator to check.
    let right_base64 = right.trim_start_matches("sha256/");
    assert!(log.contains(right_base64), "{log}");
    assert!(!log.contains(PASSWORD));
}

#[cfg(feature = "pinning")]
#[tokio::test]
async fn upstream_pin_options_are_checked_at_start_up() {
    let pin = other_pin();
    let cases = [
        // One pin and no opt-out: a backup pin is required.
        ("https://127.0.0.1:1", vec![pin.clone()], false, "backup"),
        // Pins make no sense for plain http.
        (
            "http://127.0.0.1:1",
            vec![pin.clone(), other_pin()],
            false,
            "https://",
        ),
        (
            "https://127.0.0.1:1",
            vec!["sha256/short".to_owned()],
            true,
            "pin",
        ),
    ];
    for (upstream, pins, single, expected) in cases {
        let options = app::GatewayOptions {
            upstream: upstream.to_owned(),
            upstream_pins: pins,
            allow_single_pin: single,
            ..Default::default()
        };
        let err = app::upstream_tls(&options).unwrap_err().to_string();
        assert!(err.contains("--upstream-pin"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
    // With the opt-out a single pin is accepted.
    let options = app::GatewayOptions {
        upstream: "https://127.0.0.1:1".to_owned(),
        upstream_pins: vec![pin],
        allow_single_pin: true,
        ..Default::default()
    };
    assert!(app::upstream_tls(&options).unwrap().is_some());
}

#[cfg(feature = "pinning")]
#[test]
fn binary_with_malformed_upstream_pin_exits_2_with_one_line() {
    let out = Command::new(example_binary())
        .args(["--https", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--upstream", "https://127.0.0.1:9"])
        .args(["--upstream-pin", "sha256/not-a-pin!"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--upstream-pin"), "{stderr}");
}

#[cfg(feature = "pinning")]
#[cfg(unix)]
#[test]
fn binary_banner_shows_its_own_certificate_pin() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(example_binary())
        .args(["--https", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--upstream", "http://127.0.0.1:9"])
        .arg("--out-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("SIGHUP") {
            break;
        }
    }
    signal(&child, rustix::process::Signal::TERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
    let der = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .unwrap()
        .unwrap();
    let pin = tower_perimeter::pinning::Pin::from_certificate_der(&der).unwrap();
    assert!(
        banner.contains(&format!("pin:         {}", pin.to_okhttp())),
        "{banner}"
    );
    assert!(
        banner.contains("plain HTTP:  http://localhost:"),
        "{banner}"
    );
}

// ---------------------------------------------------------------------------
// Throttle counters in Redis (`--throttle-redis`).
// ---------------------------------------------------------------------------

/// A `redis-server` of the test's own on a free loopback port, stopped on
/// drop.
#[cfg(feature = "redis")]
#[tokio::test]
#[ignore = "needs redis-server"]
async fn two_gateways_share_throttle_counters_through_redis() {
    let redis = common::RedisServer::start();
    let options = app::GatewayOptions {
        throttle_redis: Some(redis.url()),
        throttle_fail_closed: true,
        ..Default::default()
    };
    // Two gateways in front of one stand-in, as behind a load balancer.
    let a = start(None, options.clone()).await;
    let upstream = format!("http://{}", a.standin.as_ref().unwrap().addr);
    let b = start(Some(upstream), options).await;
    let (client_a, client_b) = (a.client(false), b.client(false));

    // B lets the right password in before anything happened.
    let answer = send(
        &client_b,
        get(&b.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);

    // Five wrong passwords on A reach the per-user limit...
    for attempt in 0..5 {
        let guess = format!("guess {attempt}");
        let answer = send(
            &client_a,
            get(&a.url("/api/ping"), Some(basic(USER, &guess))),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // ...and B, which saw none of them, locks the user out too.
    let answer = send(
        &client_b,
        get(&b.url("/api/ping"), Some(basic(USER, PASSWORD))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(a.hits(), 1);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn unreachable_throttle_redis_fails_open_by_default_and_closed_when_asked() {
    // A port that was free a moment ago: nothing listens on it.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", parked.local_addr().unwrap());
    drop(parked);
    for (fail_closed, expected) in [
        (false, StatusCode::OK),
        (true, StatusCode::TOO_MANY_REQUESTS),
    ] {
        let fx = start(
            None,
            app::GatewayOptions {
                throttle_redis: Some(url.clone()),
                throttle_fail_closed: fail_closed,
                ..Default::default()
            },
        )
        .await;
        let answer = send(
            &fx.client(false),
            get(&fx.url("/api/ping"), Some(basic(USER, PASSWORD))),
        )
        .await;
        assert_eq!(answer.status, expected, "fail_closed: {fail_closed}");
        assert_eq!(fx.hits(), u64::from(!fail_closed));
    }
}

#[cfg(feature = "redis")]
#[test]
fn binary_with_bad_throttle_redis_url_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example_binary())
        .args(["--https", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--upstream", "http://127.0.0.1:9"])
        .args(["--throttle-redis", "not a url"])
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--throttle-redis"), "{stderr}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = start(
        None,
        app::GatewayOptions {
            header_timeout: Duration::from_secs(1),
            ..app::GatewayOptions::default()
        },
    )
    .await;
    let http = fx.gateway.http_addr.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    // Half a request head, then silence.
    tcp.write_all(b"GET /api/ping HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    // The bound only keeps a broken build from hanging the suite; the
    // connection is expected to close after about one second.
    let read = tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut buf))
        .await
        .expect("the gateway kept a half-sent request open");
    // A reset (Err) means closed as well.
    if let Ok(n) = read {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
}
