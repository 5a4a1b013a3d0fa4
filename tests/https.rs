//! End-to-end tests of HTTPS enforcement: a plain listener and a rustls
//! listener on 127.0.0.1 serving one axum router, driven by a real HTTP
//! client (hyper with rustls) and, when installed, by `curl`; plus property
//! tests of the redirect target and the parsers.
#![cfg(feature = "https")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, HOST, LOCATION, STRICT_TRANSPORT_SECURITY};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::{Layer, Service, ServiceBuilder};
use tower_perimeter::https::{
    ClientInfo, HstsLayer, HttpsRedirectLayer, MarkTransportLayer, PublicHosts, Transport,
    TrustedProxies,
};
use tower_perimeter::ServiceBuilderExt;

struct Servers {
    plain: SocketAddr,
    tls: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// Requests that reached the echo handler without being secure.
    plain_hits: Arc<AtomicUsize>,
    cert_pem: String,
    cert_der: rustls::pki_types::CertificateDer<'static>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Echoes method, path and query, body and what the perimeter decided.
async fn echo(hits: Arc<AtomicUsize>, plain_hits: Arc<AtomicUsize>, req: Request) -> String {
    hits.fetch_add(1, Ordering::SeqCst);
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let info = req.extensions().get::<ClientInfo>().cloned();
    if !info.as_ref().is_some_and(|i| i.is_secure()) {
        plain_hits.fetch_add(1, Ordering::SeqCst);
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    format!(
        "{method} {target} {} secure={}",
        String::from_utf8_lossy(&body),
        info.is_some_and(|i| i.is_secure())
    )
}

async fn start(proxies: TrustedProxies) -> Servers {
    let plain_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = plain_listener.local_addr().unwrap();
    let tls = tls_listener.local_addr().unwrap();

    let hits = Arc::new(AtomicUsize::new(0));
    let h1 = hits.clone();
    let h2 = hits.clone();
    let plain_hits = Arc::new(AtomicUsize::new(0));
    let p2 = plain_hits.clone();
    let router = Router::new()
        .route(
            "/healthz",
            get(move || {
                h1.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        )
        .fallback(move |req: Request| echo(h2.clone(), p2.clone(), req));

    let hosts = PublicHosts::new()
        .allow(&format!("localhost:{}", tls.port()))
        .unwrap();
    let svc = ServiceBuilder::new()
        .hsts(
            HstsLayer::builder()
                .max_age(Duration::from_secs(300))
                .include_local_hosts()
                .trusted_proxies(proxies.clone())
                .build()
                .unwrap(),
        )
        .https_redirect(
            HttpsRedirectLayer::permanent(hosts)
                .unwrap()
                .trusted_proxies(proxies)
                .exempt_health_paths(),
        )
        .service(router);

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(server_config));

    let tasks = vec![
        tokio::spawn(serve(plain_listener, None, svc.clone())),
        tokio::spawn(serve(tls_listener, Some(acceptor), svc)),
    ];
    Servers {
        plain,
        tls,
        hits,
        plain_hits,
        cert_pem: ck.cert.pem(),
        cert_der,
        tasks,
    }
}

/// The accept loop: one `MarkTransportLayer` per connection.
async fn serve<S, B>(listener: TcpListener, tls: Option<TlsAcceptor>, svc: S)
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            return;
        };
        let svc = svc.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = MarkTransportLayer::tls().peer(peer).layer(svc);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                        .await;
                }
                None => {
                    let svc = MarkTransportLayer::plain().peer(peer).layer(svc);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                        .await;
                }
            }
        });
    }
}

type HttpClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client(s: &Servers) -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(s.cert_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(
    c: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = c
        .request(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends a request and follows redirects the way browsers do (at most 5):
/// 301/302 turn a POST into a GET, 307/308 keep method and body.
async fn follow(
    c: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (Vec<(StatusCode, String)>, Answer) {
    let (mut method, mut url, mut body) = (method, url.to_owned(), body.to_owned());
    let mut trail = Vec::new();
    for _ in 0..5 {
        let a = send(c, method.clone(), &url, headers, &body).await;
        if !a.status.is_redirection() {
            return (trail, a);
        }
        let next = a.headers[LOCATION].to_str().unwrap().to_owned();
        assert!(
            !a.headers.contains_key(STRICT_TRANSPORT_SECURITY),
            "HSTS on a plain redirect"
        );
        if matches!(a.status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
            && method == Method::POST
        {
            method = Method::GET;
            body.clear();
        }
        trail.push((a.status, next.clone()));
        url = next;
    }
    panic!("redirect loop: {trail:?}");
}

#[tokio::test]
async fn client_following_redirect_lands_on_https_with_same_path_and_query() {
    let s = start(TrustedProxies::new()).await;
    let c = client(&s);
    let url = format!(
        "http://localhost:{}/page/a%20b;p?x=1&y=%2F&z",
        s.plain.port()
    );
    let (trail, last) = follow(&c, Method::GET, &url, &[], "").await;
    let expected = format!(
        "https://localhost:{}/page/a%20b;p?x=1&y=%2F&z",
        s.tls.port()
    );
    assert_eq!(trail, vec![(StatusCode::MOVED_PERMANENTLY, expected)]);
    assert_eq!(last.status, StatusCode::OK);
    assert_eq!(last.body, "GET /page/a%20b;p?x=1&y=%2F&z  secure=true");
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        1,
        "only the HTTPS request reached the handler"
    );
    assert_eq!(s.plain_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn post_with_credentials_over_http_is_rejected_and_never_reaches_the_handler() {
    let s = start(TrustedProxies::new()).await;
    let c = client(&s);
    let url = format!("http://localhost:{}/api/match", s.plain.port());
    for (name, value) in [
        (AUTHORIZATION.as_str(), "Basic dXNlcjpwYXNz"),
        (COOKIE.as_str(), "session=1"),
    ] {
        let a = send(
            &c,
            Method::POST,
            &url,
            &[(name, value)],
            "{\"image\":\"...\"}",
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{name}");
        assert!(!a.headers.contains_key(LOCATION));
        assert!(!a.headers.contains_key(STRICT_TRANSPORT_SECURITY));
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
    // the same call over HTTPS goes through
    let url = format!("https://localhost:{}/api/match", s.tls.port());
    let a = send(
        &c,
        Method::POST,
        &url,
        &[("authorization", "Basic dXNlcjpwYXNz")],
        "x",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn post_without_credentials_is_redirected_with_308_and_keeps_its_body() {
    let s = start(TrustedProxies::new()).await;
    let c = client(&s);
    let url = format!("http://localhost:{}/api/match?id=7", s.plain.port());
    let (trail, last) = follow(&c, Method::POST, &url, &[], "payload").await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].0, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(last.body, "POST /api/match?id=7 payload secure=true");
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn hsts_is_present_on_https_and_absent_on_http() {
    let s = start(TrustedProxies::new()).await;
    let c = client(&s);
    let a = send(
        &c,
        Method::GET,
        &format!("https://localhost:{}/", s.tls.port()),
        &[],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[STRICT_TRANSPORT_SECURITY], "max-age=300");
    // an exempt path served over plain HTTP: reached the handler, no HSTS
    let a = send(
        &c,
        Method::GET,
        &format!("http://localhost:{}/healthz", s.plain.port()),
        &[],
        "",
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "ok"));
    assert!(!a.headers.contains_key(STRICT_TRANSPORT_SECURITY));
    // a redirect over plain HTTP: no HSTS
    let a = send(
        &c,
        Method::GET,
        &format!("http://localhost:{}/", s.plain.port()),
        &[],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::MOVED_PERMANENTLY);
    assert!(!a.headers.contains_key(STRICT_TRANSPORT_SECURITY));
}

#[tokio::test]
async fn unknown_or_hostile_host_over_http_gets_400_not_a_redirect() {
    let s = start(TrustedProxies::new()).await;
    let c = client(&s);
    let url = format!("http://127.0.0.1:{}/x", s.plain.port());
    for host in [
        "127.0.0.1",
        "evil.example",
        "localhost.evil.example",
        "user@localhost",
        "localhost:99999",
    ] {
        let a = send(&c, Method::GET, &url, &[(HOST.as_str(), host)], "").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{host}");
        assert!(!a.headers.contains_key(LOCATION), "{host}");
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn forged_forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let s = start(TrustedProxies::new().trust("10.0.0.0/8").unwrap()).await;
    let c = client(&s);
    let url = format!("http://localhost:{}/x", s.plain.port());
    let forged = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "proto=https;host=evil.example"),
    ];
    let a = send(&c, Method::GET, &url, &forged, "").await;
    assert_eq!(a.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        a.headers[LOCATION],
        format!("https://localhost:{}/x", s.tls.port()).as_str()
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn tls_terminating_proxy_on_loopback_is_believed() {
    // The test client plays a TLS-terminating proxy on 127.0.0.1.
    let s = start(TrustedProxies::new().trust_loopback()).await;
    let c = client(&s);
    let url = format!("http://localhost:{}/via-proxy?q=1", s.plain.port());
    let a = send(
        &c,
        Method::GET,
        &url,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "203.0.113.4"),
        ],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "GET /via-proxy?q=1  secure=true");
    assert_eq!(a.headers[STRICT_TRANSPORT_SECURITY], "max-age=300");
    // the proxy says the client used plain HTTP: redirected
    let a = send(
        &c,
        Method::GET,
        &url,
        &[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-for", "203.0.113.4"),
        ],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::MOVED_PERMANENTLY);
}

#[tokio::test]
async fn handlers_can_read_transport_and_client_info_as_extractors() {
    let svc = ServiceBuilder::new()
        .layer(MarkTransportLayer::tls().peer("192.0.2.8:4000".parse().unwrap()))
        .https_redirect(HttpsRedirectLayer::reject_forbidden())
        .service(Router::new().route(
            "/",
            get(|t: Transport, info: ClientInfo| async move { format!("{t:?} {:?}", info.addr()) }),
        ));
    let res = tower::ServiceExt::oneshot(svc, http::Request::new(Body::empty()))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Tls Some(192.0.2.8)");
}

#[tokio::test]
async fn axum_serve_with_connect_info_feeds_trusted_proxies() {
    use axum::extract::ConnectInfo;
    // axum::serve on plain TCP; the peer comes from ConnectInfo.
    let proxies = TrustedProxies::new()
        .trust_loopback()
        .peer_from(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
    let hosts = PublicHosts::new().allow("localhost:8443").unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|info: ClientInfo| async move { format!("{:?}", info.addr()) }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(MarkTransportLayer::plain())
                .https_redirect(
                    HttpsRedirectLayer::permanent(hosts)
                        .unwrap()
                        .trusted_proxies(proxies),
                ),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let c: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |xfp: &'static str| {
        let req = http::Request::get(format!("http://localhost:{}/", addr.port()))
            .header("x-forwarded-proto", xfp)
            .header("x-forwarded-for", "198.51.100.20")
            .body(Full::new(Bytes::new()))
            .unwrap();
        c.request(req)
    };
    // the loopback peer is trusted: its "https" is believed, and the client
    // address is the forwarded one
    let res = get("https").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Some(198.51.100.20)");
    // its "http" is believed too: redirected
    let res = get("http").await.unwrap();
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(res.headers()[LOCATION], "https://localhost:8443/");
    task.abort();
}

fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(args)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl"]
async fn curl_follows_the_redirect_to_https_with_same_path_and_query() {
    let s = start(TrustedProxies::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &s.cert_pem).unwrap();
    let url = format!("http://localhost:{}/page?x=1&y=%20", s.plain.port());
    let ca = ca.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        curl(&[
            "-sS",
            "-L",
            "--max-redirs",
            "3",
            "--max-time",
            "20",
            "--cacert",
            &ca,
            "-w",
            "\n%{url_effective} %{http_code} %{num_redirects}",
            &url,
        ])
    })
    .await
    .unwrap();
    let expected = format!(
        "GET /page?x=1&y=%20  secure=true\nhttps://localhost:{}/page?x=1&y=%20 200 1",
        s.tls.port()
    );
    assert_eq!(out, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl"]
async fn curl_post_with_basic_credentials_over_http_is_rejected() {
    let s = start(TrustedProxies::new()).await;
    let url = format!("http://localhost:{}/api/match", s.plain.port());
    let out = tokio::task::spawn_blocking(move || {
        curl(&[
            "-sS",
            "-L",
            "--max-time",
            "20",
            "-u",
            "user:secret",
            "--data",
            "x=1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_redirects}",
            &url,
        ])
    })
    .await
    .unwrap();
    assert_eq!(out, "403 0");
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl"]
async fn curl_sees_hsts_on_https_only() {
    let s = start(TrustedProxies::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &s.cert_pem).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let https = format!("https://localhost:{}/", s.tls.port());
    let http = format!("http://localhost:{}/", s.plain.port());
    let (a, b) = tokio::task::spawn_blocking(move || {
        (
            curl(&[
                "-sS",
                "--max-time",
                "20",
                "--cacert",
                &ca,
                "-o",
                "/dev/null",
                "-D",
                "-",
                &https,
            ]),
            curl(&[
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-D",
                "-",
                &http,
            ]),
        )
    })
    .await
    .unwrap();
    assert!(
        a.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=300"),
        "{a}"
    );
    assert!(b.starts_with("HTTP/1.1 301"), "{b}");
    assert!(
        !b.to_ascii_lowercase().contains("strict-transport-security"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn headless_chromium_follows_the_redirect_to_https() {
    let s = start(TrustedProxies::new()).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://localhost:{}/from-browser?x=1", s.plain.port());
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--ignore-certificate-errors",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(&url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("GET /from-browser?x=1  secure=true"), "{dom}");
    // (the browser may also fetch /favicon.ico, so only plain hits are counted)
    assert_eq!(
        s.plain_hits.load(Ordering::SeqCst),
        0,
        "no plain request reached the handler"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use tower::ServiceExt;
    use tower_perimeter::https::{ForwardedHeaders, PeerAddr, RequestHost};

    fn layer(mode: u8) -> HttpsRedirectLayer {
        let hosts = PublicHosts::new()
            .allow("example.com")
            .unwrap()
            .allow("www.example.com:8443")
            .unwrap()
            .allow("[2001:db8::1]")
            .unwrap()
            .map_port(8080, 8443);
        let proxies = TrustedProxies::new()
            .trust("10.0.0.0/8")
            .unwrap()
            .strip_untrusted(mode & 4 != 0);
        let l = match mode & 3 {
            0 => HttpsRedirectLayer::permanent(hosts).unwrap(),
            1 => HttpsRedirectLayer::temporary(hosts).unwrap(),
            2 => HttpsRedirectLayer::reject_upgrade_required(),
            _ => HttpsRedirectLayer::reject_forbidden(),
        };
        l.trusted_proxies(proxies).exempt_acme_challenge()
    }

    fn host_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("example.com".to_owned()),
            Just("WWW.example.com:8080".to_owned()),
            Just("[2001:db8::1]:8080".to_owned()),
            Just("evil.example".to_owned()),
            Just("user@example.com".to_owned()),
            "[a-zA-Z0-9.:@\\[\\]%_-]{0,40}",
            "[ -~]{0,80}",
        ]
    }

    fn forwarded_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,60}",
            "(for=[0-9.]{1,15};proto=https?;host=[a-z.]{1,20}, ?){0,3}",
            "(10\\.0\\.0\\.[0-9], ?){0,3}[0-9.]{1,15}",
        ]
    }

    /// The property below is not vacuous: the same set-up does redirect.
    #[tokio::test]
    async fn property_set_up_produces_redirects() {
        for (mode, status) in [(0, StatusCode::MOVED_PERMANENTLY), (1, StatusCode::FOUND)] {
            let svc = layer(mode).layer(tower::service_fn(|_req: http::Request<()>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }));
            let mut req = http::Request::get("/a?b")
                .header("host", "WWW.example.com:8080")
                .body(())
                .unwrap();
            req.extensions_mut()
                .insert(PeerAddr("198.51.100.9:1".parse().unwrap()));
            let res = svc.oneshot(req).await.unwrap();
            assert_eq!(res.status(), status);
            assert_eq!(res.headers()[LOCATION], "https://www.example.com:8443/a?b");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// For any request, the layer answers (never panics), and a `Location`
        /// is absent or an https URL on an allowed host.
        #[test]
        fn location_is_absent_or_https_on_an_allowed_host(
            mode in 0u8..8,
            method in prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "X-CUSTOM"]),
            target in prop_oneof!["/[ -~]{0,40}", "[ -~]{0,40}", Just("*".to_owned()), "https?://[a-z.:@0-9\\[\\]]{0,30}/[a-z?=&%0-9]{0,10}"],
            host in prop::option::of(host_value()),
            xfp in prop::option::of(prop_oneof![Just("https".to_owned()), Just("http".to_owned()), "[ -~]{0,12}"]),
            xfh in prop::option::of(host_value()),
            xff in prop::option::of(forwarded_value()),
            fwd in prop::option::of(forwarded_value()),
            creds in any::<bool>(),
            transport in prop::option::of(any::<bool>()),
            peer_trusted in any::<bool>(),
        ) {
            let Ok(uri) = target.parse::<Uri>() else { return Ok(()) };
            let mut b = http::Request::builder().method(method).uri(uri);
            for (name, v) in [("host", &host), ("x-forwarded-proto", &xfp), ("x-forwarded-host", &xfh),
                ("x-forwarded-for", &xff), ("forwarded", &fwd)] {
                if let Some(v) = v {
                    if let Ok(v) = http::HeaderValue::from_str(v) {
                        b = b.header(name, v);
                    }
                }
            }
            if creds {
                b = b.header("authorization", "Basic eDp5");
            }
            let Ok(mut req) = b.body(()) else { return Ok(()) };
            if let Some(tls) = transport {
                req.extensions_mut().insert(if tls { Transport::Tls } else { Transport::Plain });
            }
            let peer = if peer_trusted { "10.0.0.9:1" } else { "198.51.100.9:1" };
            req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));

            let svc = layer(mode).layer(tower::service_fn(|_req: http::Request<()>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }));
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let res = rt.block_on(svc.oneshot(req)).unwrap();
            prop_assert!(res.status() != StatusCode::INTERNAL_SERVER_ERROR);
            if let Some(loc) = res.headers().get(LOCATION) {
                prop_assert!(res.status().is_redirection());
                let loc: Uri = loc.to_str().unwrap().parse().unwrap();
                prop_assert_eq!(loc.scheme_str(), Some("https"));
                let authority = loc.authority().unwrap().as_str();
                prop_assert!(
                    ["example.com", "example.com:8443", "www.example.com:8443",
                        "[2001:db8::1]", "[2001:db8::1]:8443"].contains(&authority),
                    "unexpected authority {}", authority
                );
                prop_assert!(loc.path().starts_with('/'));
            } else if res.status().is_redirection() {
                prop_assert!(false, "redirect without Location");
            }
            if creds && res.status().is_redirection() {
                prop_assert!(false, "a request with credentials was redirected");
            }
        }

        /// Whatever the input, a parsed host prints back to a value that
        /// parses to itself, and holds only safe characters.
        #[test]
        fn parsed_hosts_round_trip_and_hold_safe_characters(s in "[ -~]{0,80}") {
            if let Some(h) = RequestHost::parse(&s) {
                let again = RequestHost::parse(&h.to_string());
                prop_assert_eq!(again.as_ref(), Some(&h));
                prop_assert!(h.host().bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:[]".contains(&b)));
                prop_assert!(!h.host().bytes().any(|b| b.is_ascii_uppercase()));
            }
        }

        /// Forwarding headers from an untrusted peer never change the result,
        /// whatever they say.
        #[test]
        fn untrusted_forwarding_headers_change_nothing(
            xfp in "[ -~]{0,30}", xff in forwarded_value(), xfh in "[ -~]{0,30}", fwd in forwarded_value(),
        ) {
            for headers in [ForwardedHeaders::XForwarded, ForwardedHeaders::Forwarded, ForwardedHeaders::Both] {
                let p = TrustedProxies::new().trust("10.0.0.0/8").unwrap().headers(headers);
                let mut bare = http::Request::get("/").header("host", "example.com").body(()).unwrap();
                bare.extensions_mut().insert(PeerAddr("198.51.100.9:1".parse().unwrap()));
                let mut forged = http::Request::get("/").header("host", "example.com").body(()).unwrap();
                forged.extensions_mut().insert(PeerAddr("198.51.100.9:1".parse().unwrap()));
                for (k, v) in [("x-forwarded-proto", &xfp), ("x-forwarded-for", &xff),
                    ("x-forwarded-host", &xfh), ("forwarded", &fwd)] {
                    if let Ok(v) = http::HeaderValue::from_str(v) {
                        forged.headers_mut().insert(k, v);
                    }
                }
                prop_assert_eq!(p.resolve_request(&bare), p.resolve_request(&forged));
            }
        }

        /// From a trusted peer the walk never panics and never reports more
        /// hops than the limit.
        #[test]
        fn trusted_walk_is_bounded(xff in "([0-9.]{1,15}, ?){0,40}", fwd in "[ -~]{0,200}", max in 1usize..20) {
            for headers in [ForwardedHeaders::XForwarded, ForwardedHeaders::Forwarded] {
                let p = TrustedProxies::new().trust("0.0.0.0/0").unwrap().headers(headers).max_hops(max);
                let mut r = http::Request::get("/").body(()).unwrap();
                r.extensions_mut().insert(PeerAddr("10.0.0.1:1".parse().unwrap()));
                for (k, v) in [("x-forwarded-for", &xff), ("forwarded", &fwd)] {
                    if let Ok(v) = http::HeaderValue::from_str(v) {
                        r.headers_mut().insert(k, v);
                    }
                }
                prop_assert!(p.resolve_request(&r).forwarded_hops() <= max);
            }
        }
    }
}
