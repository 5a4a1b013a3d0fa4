//! End-to-end tests of `CspLayer`, the report receiver and the
//! `web_components` example: real axum routers on 127.0.0.1 sockets and,
//! for the browser test, headless Chromium.
#![cfg(all(feature = "csp", feature = "axum", feature = "basic-auth"))]

use axum::extract::Request as AxumRequest;
use axum::http::{header, HeaderMap, Method, Request, Response, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::decompression::DecompressionLayer;
use tower_http::services::ServeDir;
use tower_perimeter::basic_auth::Users;
use tower_perimeter::csp::{
    preset, CspLayer, CspNonce, CspOverride, CspViolation, Directive, ExistingPolicy, Policy,
    ReportFormat, ReportReceiver, Source, DEFAULT_PLACEHOLDER,
};
use tower_perimeter::ServiceBuilderExt;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/web_components.rs"]
mod web_components;

const CSP: &str = "content-security-policy";
const CSP_RO: &str = "content-security-policy-report-only";

/// Serves `app` on an ephemeral loopback port.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
}

async fn send(req: Request<Full<Bytes>>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get_url(addr: SocketAddr, path: &str) -> Reply {
    send(
        Request::get(format!("http://{addr}{path}"))
            .body(Full::default())
            .unwrap(),
    )
    .await
}

fn nonce_policy() -> Policy {
    Policy::builder()
        .default_src([Source::SelfOrigin])
        .script_src([Source::Nonce, Source::StrictDynamic])
        .build()
        .unwrap()
}

/// The nonce in a `script-src 'nonce-…'` header.
fn header_nonce(value: &str) -> String {
    let start = value.find("'nonce-").expect("nonce in header") + "'nonce-".len();
    value[start..start + 24].to_owned()
}

async fn echo_nonce(nonce: CspNonce) -> Html<String> {
    Html(format!("<script {}></script>", nonce.attribute()))
}

#[tokio::test]
async fn header_and_handler_see_the_same_fresh_nonce_per_response() {
    let app = Router::new()
        .route("/", get(echo_nonce))
        .layer(CspLayer::new(nonce_policy()));
    let addr = serve(app).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let reply = get_url(addr, "/").await;
        assert_eq!(reply.status, StatusCode::OK);
        let nonce = header_nonce(reply.header(CSP).unwrap());
        assert_eq!(reply.text(), format!("<script nonce=\"{nonce}\"></script>"));
        assert!(!seen.contains(&nonce), "nonce reused");
        seen.push(nonce);
    }
}

#[tokio::test]
async fn nonce_extractor_without_the_layer_answers_500_naming_it() {
    let addr = serve(Router::new().route("/", get(echo_nonce))).await;
    let reply = get_url(addr, "/").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.text(),
        "Missing CspNonce. Perhaps you forgot to add CspLayer?"
    );
}

#[tokio::test]
async fn optional_nonce_extractor_is_none_without_the_layer() {
    let handler = |nonce: Option<CspNonce>| async move { format!("{}", nonce.is_some()) };
    let app = Router::new()
        .route("/with", get(handler))
        .layer(CspLayer::new(nonce_policy()))
        .route("/without", get(handler));
    let addr = serve(app).await;
    assert_eq!(get_url(addr, "/with").await.text(), "true");
    let without = get_url(addr, "/without").await;
    assert_eq!(without.status, StatusCode::OK);
    assert_eq!(without.text(), "false");
}

async fn own_policy() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, "default-src 'self'")],
        Html("<p>own</p>"),
    )
}

fn app_with_existing(existing: ExistingPolicy) -> Router {
    let layer = CspLayer::builder()
        .enforce(nonce_policy())
        .existing_policy(existing)
        .build()
        .unwrap();
    Router::new().route("/", get(own_policy)).layer(layer)
}

#[tokio::test]
async fn handler_policy_is_kept_by_default() {
    let addr = serve(app_with_existing(ExistingPolicy::Keep)).await;
    let reply = get_url(addr, "/").await;
    let values: Vec<_> = reply.headers.get_all(CSP).iter().collect();
    assert_eq!(values, ["default-src 'self'"]);
}

#[tokio::test]
async fn replace_mode_replaces_the_handler_policy() {
    let addr = serve(app_with_existing(ExistingPolicy::Replace)).await;
    let reply = get_url(addr, "/").await;
    let values: Vec<_> = reply.headers.get_all(CSP).iter().collect();
    assert_eq!(values.len(), 1);
    assert!(values[0].to_str().unwrap().contains("'nonce-"));
}

#[tokio::test]
async fn append_mode_sends_both_policies() {
    let addr = serve(app_with_existing(ExistingPolicy::Append)).await;
    let reply = get_url(addr, "/").await;
    let values: Vec<_> = reply.headers.get_all(CSP).iter().collect();
    assert_eq!(values.len(), 2);
    assert_eq!(values[0], "default-src 'self'");
    assert!(values[1].to_str().unwrap().contains("'nonce-"));
}

#[tokio::test]
async fn handler_can_skip_or_replace_the_policy_for_one_response() {
    let special = Policy::builder()
        .default_src([Source::None])
        .img_src([Source::scheme("data:")])
        .build()
        .unwrap();
    let for_handler = special.clone();
    let app = Router::new()
        .route(
            "/skip",
            get(|| async { (Extension(CspOverride::Skip), Html("<p>skip</p>")) }),
        )
        .route(
            "/special",
            get(move || {
                let policy = for_handler.clone();
                async move {
                    (
                        Extension(CspOverride::Enforce(policy)),
                        Html("<p>special</p>"),
                    )
                }
            }),
        )
        .route("/normal", get(|| async { Html("<p>normal</p>") }))
        .layer(CspLayer::new(nonce_policy()));
    let addr = serve(app).await;
    assert!(get_url(addr, "/skip").await.header(CSP).is_none());
    assert_eq!(
        get_url(addr, "/special").await.header(CSP),
        Some("default-src 'none'; img-src data:")
    );
    assert!(get_url(addr, "/normal")
        .await
        .header(CSP)
        .unwrap()
        .contains("'nonce-"));
}

#[tokio::test]
async fn nonced_responses_are_not_stored_unless_the_handler_says_otherwise() {
    let app = Router::new()
        .route("/", get(echo_nonce))
        .route(
            "/cached",
            get(|| async {
                (
                    [(header::CACHE_CONTROL, "private, max-age=60")],
                    Html("<p>x</p>"),
                )
            }),
        )
        .layer(CspLayer::new(nonce_policy()));
    let addr = serve(app).await;
    assert_eq!(
        get_url(addr, "/").await.header("cache-control"),
        Some("private, no-store")
    );
    assert_eq!(
        get_url(addr, "/cached").await.header("cache-control"),
        Some("private, max-age=60")
    );

    // A policy without a nonce reveals nothing: no cache header is added.
    let app = Router::new()
        .route("/", get(|| async { Html("<p>x</p>") }))
        .layer(CspLayer::new(
            Policy::builder()
                .default_src([Source::SelfOrigin])
                .build()
                .unwrap(),
        ));
    let addr = serve(app).await;
    let reply = get_url(addr, "/").await;
    assert_eq!(reply.header(CSP), Some("default-src 'self'"));
    assert!(reply.header("cache-control").is_none());
}

#[tokio::test]
async fn html_only_mode_skips_other_responses() {
    let layer = CspLayer::builder()
        .enforce(nonce_policy())
        .html_only(true)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/page", get(|| async { Html("<p>x</p>") }))
        .route(
            "/data",
            get(|| async { axum::Json(serde_json::json!({"a": 1})) }),
        )
        .layer(layer);
    let addr = serve(app).await;
    assert!(get_url(addr, "/page").await.header(CSP).is_some());
    let data = get_url(addr, "/data").await;
    assert!(data.header(CSP).is_none());
    assert!(data.header("cache-control").is_none());
}

fn substituting_layer() -> CspLayer {
    CspLayer::builder()
        .enforce(nonce_policy())
        .substitute_placeholder(DEFAULT_PLACEHOLDER)
        .unwrap()
        .build()
        .unwrap()
}

/// A page larger than `ServeDir`'s read buffer, with placeholders across
/// every 1 KiB boundary and at both ends.
fn big_page() -> String {
    let mut page = String::from("{{csp-nonce}}<html>");
    while page.len() < 200_000 {
        // Start the placeholder 5 bytes before the next 1 KiB boundary.
        let prefix = "<script nonce=\"".len();
        let boundary = ((page.len() + prefix + 5) / 1024 + 1) * 1024;
        let pad = boundary - 5 - prefix - page.len();
        page.push_str(&"x".repeat(pad));
        page.push_str("<script nonce=\"{{csp-nonce}}\">go()</script>\n");
        assert_eq!(&page[boundary - 5..boundary + 8], DEFAULT_PLACEHOLDER);
    }
    page.push_str("{{csp-nonce}}");
    page
}

#[tokio::test]
async fn static_file_placeholders_are_replaced_with_the_header_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let page = big_page();
    std::fs::write(dir.path().join("index.html"), &page).unwrap();
    std::fs::write(dir.path().join("data.txt"), "{{csp-nonce}}").unwrap();
    let app = Router::new()
        .fallback_service(ServeDir::new(dir.path()))
        .layer(substituting_layer());
    let addr = serve(app).await;

    let reply = get_url(addr, "/index.html").await;
    assert_eq!(reply.status, StatusCode::OK);
    let nonce = header_nonce(reply.header(CSP).unwrap());
    assert!(
        reply.header("content-length").is_none(),
        "stale Content-Length kept"
    );
    assert_eq!(reply.text(), page.replace(DEFAULT_PLACEHOLDER, &nonce));

    // Not HTML: untouched.
    let reply = get_url(addr, "/data.txt").await;
    assert_eq!(reply.text(), "{{csp-nonce}}");
    assert_eq!(reply.header("content-length"), Some("13"));
}

#[tokio::test]
async fn not_modified_responses_get_no_new_nonce() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<p nonce=\"{{csp-nonce}}\"></p>",
    )
    .unwrap();
    let app = Router::new()
        .fallback_service(ServeDir::new(dir.path()))
        .layer(substituting_layer());
    let addr = serve(app).await;
    let first = get_url(addr, "/index.html").await;
    let last_modified = first.header("last-modified").unwrap().to_owned();
    let second = send(
        Request::get(format!("http://{addr}/index.html"))
            .header(header::IF_MODIFIED_SINCE, last_modified)
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(second.status, StatusCode::NOT_MODIFIED);
    assert!(second.header(CSP).is_none());
    assert!(second.header("cache-control").is_none());
}

#[tokio::test]
async fn encoded_bodies_are_left_alone() {
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html"),
                        (header::CONTENT_ENCODING, "br"),
                    ],
                    "{{csp-nonce}}",
                )
            }),
        )
        .layer(substituting_layer());
    let addr = serve(app).await;
    let reply = get_url(addr, "/").await;
    assert_eq!(reply.text(), "{{csp-nonce}}");
    assert_eq!(reply.header("content-length"), Some("13"));
}

#[tokio::test]
async fn compression_outside_the_layer_compresses_the_substituted_page() {
    let page = big_page();
    let body = page.clone();
    let inner = Router::new().route("/", get(move || async move { Html(body) }));
    // CompressionLayer outside CspLayer, as the module docs advise; the
    // client side decompresses.
    let app = ServiceBuilder::new()
        .layer(DecompressionLayer::new())
        .layer(CompressionLayer::new())
        .csp(substituting_layer())
        .service(inner);
    let res = app
        .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let nonce = header_nonce(res.headers()[CSP].to_str().unwrap());
    let text = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8(text.to_vec()).unwrap(),
        page.replace(DEFAULT_PLACEHOLDER, &nonce)
    );
}

#[tokio::test]
async fn enforce_and_report_only_policies_are_sent_together() {
    let trial = Policy::builder()
        .default_src([Source::None])
        .script_src([Source::Nonce])
        .report_uri("/csp-reports")
        .report_to("csp-endpoint")
        .build()
        .unwrap();
    let layer = CspLayer::builder()
        .enforce(nonce_policy())
        .report_only(trial)
        .reporting_endpoint("csp-endpoint", "/csp-reports")
        .unwrap()
        .build()
        .unwrap();
    let app = Router::new().route("/", get(echo_nonce)).layer(layer);
    let addr = serve(app).await;
    let reply = get_url(addr, "/").await;
    let enforce = header_nonce(reply.header(CSP).unwrap());
    let report_only = reply.header(CSP_RO).unwrap();
    assert_eq!(header_nonce(report_only), enforce);
    assert!(report_only.ends_with("report-uri /csp-reports; report-to csp-endpoint"));
    assert_eq!(
        reply.header("reporting-endpoints"),
        Some("csp-endpoint=\"/csp-reports\"")
    );
}

fn receiver_app() -> (Router, Arc<Mutex<Vec<CspViolation>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let receiver = ReportReceiver::new()
        .max_body(4096)
        .on_report(move |v| sink.lock().unwrap().push(v));
    (Router::new().route_service("/csp-reports", receiver), seen)
}

async fn post_report(addr: SocketAddr, content_type: &str, body: impl Into<Bytes>) -> Reply {
    send(
        Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/csp-reports"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body.into()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn report_receiver_accepts_both_formats_over_http() {
    let (app, seen) = receiver_app();
    let addr = serve(app).await;
    let legacy = r#"{"csp-report":{"document-uri":"http://127.0.0.1/","effective-directive":"script-src-elem","blocked-uri":"inline","disposition":"enforce"}}"#;
    assert_eq!(
        post_report(addr, "application/csp-report", legacy)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let modern = r#"[{"type":"csp-violation","url":"http://127.0.0.1/","body":{"documentURL":"http://127.0.0.1/","effectiveDirective":"style-src-elem","blockedURL":"inline","disposition":"report"}}]"#;
    assert_eq!(
        post_report(addr, "application/reports+json", modern)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].format, ReportFormat::CspReport);
    assert_eq!(seen[1].format, ReportFormat::ReportingApi);
    assert_eq!(seen[1].effective_directive, "style-src-elem");
}

#[tokio::test]
async fn report_receiver_rejects_wrong_type_size_and_syntax() {
    let (app, seen) = receiver_app();
    let addr = serve(app).await;
    assert_eq!(
        post_report(addr, "text/plain", "hello").await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post_report(addr, "application/csp-report", vec![b' '; 5000])
            .await
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        post_report(addr, "application/csp-report", "{\"csp-report\":")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn report_receiver_caps_a_chunked_body_without_content_length() {
    let (app, seen) = receiver_app();
    let chunks: Vec<Result<_, std::convert::Infallible>> = (0..10)
        .map(|_| Ok(hyper::body::Frame::data(Bytes::from(vec![b' '; 1000]))))
        .collect();
    let body = axum::body::Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        chunks,
    )));
    let req: AxumRequest = Request::post("/csp-reports")
        .header(header::CONTENT_TYPE, "application/csp-report")
        .body(body)
        .unwrap();
    let res: Response<_> = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(seen.lock().unwrap().is_empty());
}

// ---- the web_components example ------------------------------------------

type Reports = Arc<Mutex<Vec<CspViolation>>>;

async fn serve_example(enforce: impl FnOnce(&str) -> Policy) -> (SocketAddr, Reports) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reports: Reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let config = web_components::DemoConfig {
        users: Users::builder()
            .user("demo", "test-password")
            .unwrap()
            .build(),
        enforce: enforce(&format!("http://{addr}")),
        on_report: Arc::new(move |v| sink.lock().unwrap().push(v)),
    };
    let app = web_components::app(config).unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, reports)
}

fn example_policy(web_service: &str) -> Policy {
    web_components::enforced_policy(web_service)
        .build()
        .unwrap()
}

#[tokio::test]
async fn example_api_requires_basic_credentials() {
    let (addr, _) = serve_example(example_policy).await;
    let anonymous = get_url(addr, "/api/v1/health").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .contains("Face SDK"));
    let authorized = send(
        Request::get(format!("http://{addr}/api/v1/health"))
            // demo:test-password
            .header(header::AUTHORIZATION, "Basic ZGVtbzp0ZXN0LXBhc3N3b3Jk")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(authorized.status, StatusCode::OK);
    assert!(authorized.text().contains("\"user\":\"demo\""));
}

#[tokio::test]
async fn example_pages_carry_the_nonce_in_header_and_markup() {
    let (addr, _) = serve_example(example_policy).await;
    for path in ["/", "/static/static-page.html"] {
        let reply = get_url(addr, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let nonce = header_nonce(reply.header(CSP).unwrap());
        let text = reply.text();
        assert!(
            text.contains(&format!("<script nonce=\"{nonce}\">")),
            "{path}"
        );
        assert!(
            text.contains(&format!("'{nonce}');")),
            "{path}: nonce passed to the component"
        );
        assert!(!text.contains(DEFAULT_PLACEHOLDER), "{path}");
        assert!(reply
            .header(CSP_RO)
            .unwrap()
            .contains("require-trusted-types-for 'script'"));
    }
    let wasm = get_url(addr, "/static/face-liveness.wasm").await;
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    assert_eq!(&wasm.body[..], web_components::WASM_MODULE);
}

// ---- the real browser ----------------------------------------------------

/// Loads `url` in headless Chromium and returns the DOM after scripts ran.
async fn chromium_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start /usr/bin/chromium");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("chromium finished within 2 minutes")
        .unwrap();
    assert!(
        output.status.success(),
        "chromium failed: {:?}",
        output.status
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The `data-result` of the self-check item `check-<id>`.
fn check(dom: &str, id: &str) -> String {
    let marker = format!("id=\"check-{id}\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in DOM:\n{dom}"));
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let value = &tag[tag.find("data-result=\"").unwrap() + "data-result=\"".len()..];
    value[..value.find('"').unwrap()].to_owned()
}

/// Waits (bounded) until a report for `document` arrives, then returns all
/// enforced-policy reports for it.
async fn enforced_reports(reports: &Reports, document: &str) -> Vec<CspViolation> {
    for _ in 0..600 {
        let found: Vec<_> = reports
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v.document_url == document && v.disposition == "enforce")
            .cloned()
            .collect();
        if !found.is_empty() {
            // Let any further reports from the same page arrive.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return reports
                .lock()
                .unwrap()
                .iter()
                .filter(|v| v.document_url == document && v.disposition == "enforce")
                .cloned()
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no violation report for {document} within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn chromium_runs_nonced_code_and_blocks_and_reports_injected_script() {
    let (addr, reports) = serve_example(example_policy).await;
    for path in ["/", "/static/static-page.html"] {
        let url = format!("http://{addr}{path}");
        let dom = chromium_dom(&url).await;
        assert_eq!(check(&dom, "inline-script"), "ran", "{path}");
        assert_eq!(check(&dom, "component-style"), "applied", "{path}");
        assert_eq!(check(&dom, "component-wasm"), "42", "{path}");
        assert_eq!(check(&dom, "injected-script"), "blocked", "{path}");

        // The injected script, and nothing else, violated the enforced policy.
        let violations = enforced_reports(&reports, &url).await;
        assert_eq!(violations.len(), 1, "{path}: {violations:#?}");
        assert_eq!(violations[0].blocked_url, "inline");
        assert!(violations[0].effective_directive.starts_with("script-src"));
        assert_eq!(violations[0].format, ReportFormat::CspReport);
        assert!(!violations[0].original_policy.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium"]
async fn chromium_blocks_the_component_without_wasm_and_style_permissions() {
    // The preset minus 'wasm-unsafe-eval' and the style nonce: the browser
    // must then refuse the component's WebAssembly and injected style, which
    // shows the positive test is not passing vacuously.
    let (addr, reports) = serve_example(|web_service| {
        web_components::enforced_policy(web_service)
            .set(Directive::ScriptSrc, [Source::Nonce, Source::StrictDynamic])
            .set(Directive::StyleSrc, [Source::SelfOrigin])
            .build()
            .unwrap()
    })
    .await;
    let url = format!("http://{addr}/");
    let dom = chromium_dom(&url).await;
    assert_eq!(check(&dom, "inline-script"), "ran");
    assert_eq!(check(&dom, "component-style"), "missing");
    assert_eq!(check(&dom, "component-wasm"), "blocked");
    assert_eq!(check(&dom, "injected-script"), "blocked");
    let violations = enforced_reports(&reports, &url).await;
    assert!(
        violations
            .iter()
            .any(|v| v.effective_directive.starts_with("style-src")),
        "{violations:#?}"
    );
}

#[test]
fn preset_is_accepted_by_the_layer_with_both_report_mechanisms() {
    let policy = preset::face_sdk_web_components("https://faceapi.example.com")
        .report_uri("/csp-reports")
        .report_to("csp-endpoint")
        .build()
        .unwrap();
    let layer = CspLayer::builder()
        .enforce(policy)
        .reporting_endpoint("csp-endpoint", "/csp-reports")
        .unwrap()
        .build();
    assert!(layer.is_ok());
}
