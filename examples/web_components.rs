//! A page that hosts the Face SDK Web Components under a nonce-based
//! Content-Security-Policy, with the Web Service API behind Basic auth.
//!
//! ```sh
//! cargo run --example web_components -- --listen 127.0.0.1:3000
//! ```
//!
//! - `/`: a page rendered by an axum handler, which reads the response's
//!   [`CspNonce`] and passes it to its `<script>` elements and to the
//!   component's `nonce` setting.
//! - `/static/static-page.html`: the same page as a static file, whose
//!   `{{csp-nonce}}` placeholders the layer replaces while streaming it.
//! - `/static/face-liveness.js`: a stand-in for the `<face-liveness>`
//!   component (the real package comes from the vendor's registry). Like the
//!   real one, it injects a `<style>` carrying the nonce and starts a
//!   WebAssembly module, so the policy is exercised for real.
//! - `/api/v1/...`: a stand-in for the Face SDK Web Service, behind
//!   `BasicAuthLayer` as the vendor's guide asks.
//! - `/csp-reports`: a [`ReportReceiver`] for violation reports.
//!
//! Each page has a self-check panel showing that its nonced scripts ran,
//! the component's style applied and its WebAssembly started, and that the
//! "injected" script at the bottom (no nonce) was blocked and reported.
//!
//! The enforced policy reports with `report-uri`, which browsers send at
//! once; a report-only trial of Trusted Types reports with `report-to`
//! (the Reporting API), which browsers batch and only deliver to secure
//! origins.

use axum::extract::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_http::services::ServeDir;
use tower_perimeter::basic_auth::{AuthenticatedUser, BasicAuthLayer, Users};
use tower_perimeter::csp::{
    preset, CspLayer, CspNonce, CspViolation, Policy, PolicyBuilder, ReportReceiver,
    DEFAULT_PLACEHOLDER,
};
use tower_perimeter::ConfigError;

/// The directory with the static page and the stand-in component.
pub const ASSETS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/assets/web_components"
);

/// A hand-written WebAssembly module exporting `answer() -> i32` = 42: the
/// stand-in for the components' face-detection module.
pub const WASM_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type section: () -> i32
    0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
    0x07, 0x0a, 0x01, 0x06, b'a', b'n', b's', b'w', b'e', b'r', 0x00, 0x00, // export "answer"
    0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x2a, 0x0b, // code: i32.const 42; end
];

/// Called with every violation report the server receives.
pub type OnReport = Arc<dyn Fn(CspViolation) + Send + Sync>;

/// Everything the demo app needs.
pub struct DemoConfig {
    /// The users allowed to call the API.
    pub users: Users,
    /// The enforced policy.
    pub enforce: Policy,
    /// Called for every violation report, after it is logged.
    pub on_report: OnReport,
}

impl std::fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoConfig")
            .field("users", &self.users)
            .field("enforce", &self.enforce)
            .field("on_report", &"<fn>")
            .finish()
    }
}

/// The enforced policy: the Face SDK preset, reporting to `/csp-reports`.
pub fn enforced_policy(web_service: &str) -> PolicyBuilder {
    preset::face_sdk_web_components(web_service).report_uri("/csp-reports")
}

/// The demo's router.
///
/// # Errors
///
/// A configuration mistake in one of the layers.
pub fn app(config: DemoConfig) -> Result<Router, ConfigError> {
    // Trial of a stricter policy: report, do not block.
    let trial = config
        .enforce
        .to_builder()
        .require_trusted_types_for_script()
        .report_to("csp-endpoint")
        .build()?;
    let csp = CspLayer::builder()
        .enforce(config.enforce)
        .report_only(trial)
        .reporting_endpoint("csp-endpoint", "/csp-reports")?
        .substitute_placeholder(DEFAULT_PLACEHOLDER)?
        .build()?;
    let basic_auth = BasicAuthLayer::builder()
        .realm("Face SDK")?
        .users(config.users)
        .build()?;

    let api = Router::new()
        .route("/health", get(health))
        .route("/liveness", post(liveness))
        .layer(basic_auth);

    let on_report = config.on_report;
    let receiver = ReportReceiver::new().on_report(move |violation| on_report(violation));

    Ok(Router::new()
        .route("/", get(page))
        .route("/static/face-liveness.wasm", get(wasm))
        .nest_service("/static", ServeDir::new(ASSETS))
        .nest("/api/v1", api)
        .layer(csp)
        // Reports need no policy of their own.
        .route_service("/csp-reports", receiver))
}

async fn page(nonce: CspNonce) -> Html<String> {
    let attr = nonce.attribute();
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Face SDK Web Components</title>
  <style {attr}>
    body {{ font-family: sans-serif; max-width: 48em; margin: 2em auto; }}
    li[data-result="pending"] output {{ color: #a60; }}
  </style>
  <script {attr} src="/static/checks.js"></script>
  <script {attr} src="/static/face-liveness.js"></script>
</head>
<body>
  <h1>Liveness check</h1>
  <face-liveness></face-liveness>

  <h2>Self-check</h2>
  <ul>
    <li id="check-inline-script" data-result="pending">Nonced inline script: <output>pending</output></li>
    <li id="check-component-style" data-result="pending">Component style: <output>pending</output></li>
    <li id="check-component-wasm" data-result="pending">Component WebAssembly: <output>pending</output></li>
    <li id="check-injected-script" data-result="pending">Injected script: <output>pending</output></li>
  </ul>
  <p>The same page as a static file: <a href="/static/static-page.html">static-page.html</a>.</p>

  <script {attr}>
    faceDemo.mark('inline-script', 'ran');
    faceDemo.start(document.querySelector('face-liveness'), '{nonce}');
  </script>

  <!-- What an attacker's injected markup looks like: no nonce, so CSP blocks it. -->
  <script>faceDemo.mark('injected-script', 'ran: CSP did not block it');</script>
</body>
</html>
"#
    ))
}

async fn wasm() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/wasm")], WASM_MODULE)
}

async fn health(user: AuthenticatedUser) -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok", "user": user.name() }))
}

/// Stand-in for the Web Service's liveness endpoint.
async fn liveness(
    user: AuthenticatedUser,
    Json(request): Json<serde_json::Value>,
) -> impl IntoResponse {
    let frames = request
        .get("frames")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    Json(serde_json::json!({ "liveness": "checked", "frames": frames, "user": user.name() }))
}

#[derive(Parser)]
#[command(about = "Serve a page hosting the Face SDK Web Components under a nonce-based CSP")]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// API user name.
    #[arg(long, default_value = "demo")]
    user: String,
    /// API password (default: $FACE_DEMO_PASSWORD, else a random one, printed).
    #[arg(long)]
    password: Option<String>,
    /// URL of the Face SDK Web Service the components talk to, if not this server.
    #[arg(long)]
    web_service: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_perimeter=info".into()),
        )
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let password = args
        .password
        .or_else(|| std::env::var("FACE_DEMO_PASSWORD").ok());
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (CspNonce::generate().to_string(), true),
    };
    let users = Users::builder().user(&args.user, &password)?.build();
    let web_service = args.web_service.unwrap_or_else(|| url.clone());
    let config = DemoConfig {
        users,
        enforce: enforced_policy(&web_service).build()?,
        // Violations are already logged as tracing events.
        on_report: Arc::new(|_| {}),
    };
    let app = app(config)?;
    println!("Face SDK Web Components demo on {url}/");
    println!("  static page: {url}/static/static-page.html");
    if generated {
        println!(
            "  API: {url}/api/v1/health  (user {}, password {password})",
            args.user
        );
    } else {
        println!("  API: {url}/api/v1/health  (user {})", args.user);
    }
    axum::serve(listener, app).await?;
    Ok(())
}
