//! A receiver for CSP violation reports.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// The default body cap of [`ReportReceiver`]: 64 KiB.
pub const DEFAULT_MAX_REPORT_BODY: usize = 64 * 1024;

/// Most reports taken from one `application/reports+json` body.
const MAX_REPORTS_PER_BODY: usize = 100;

/// How a violation was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub enum ReportFormat {
    /// `report-uri`: `application/csp-report`, one `{"csp-report": …}`.
    #[default]
    CspReport,
    /// `report-to`: `application/reports+json`, a list of Reporting API
    /// reports of type `csp-violation`.
    ReportingApi,
}

/// One Content-Security-Policy violation, as reported by a browser.
///
/// Every field comes from the client and is untrusted text. Nonces in
/// [`original_policy`](Self::original_policy) are replaced with
/// `'nonce-…'` so that stored reports carry no nonce.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CspViolation {
    /// How the report arrived.
    pub format: ReportFormat,
    /// The page where the violation happened.
    pub document_url: String,
    /// What was blocked: a URL, or `inline`, `eval`, `wasm-eval`.
    pub blocked_url: String,
    /// The directive that blocked it, e.g. `script-src-elem`.
    pub effective_directive: String,
    /// The policy that was violated, nonces removed.
    pub original_policy: String,
    /// `enforce` or `report` (report-only).
    pub disposition: String,
    /// The page's referrer.
    pub referrer: String,
    /// The script file where the violation happened, if known.
    pub source_file: String,
    /// The first characters of the blocked code, with `'report-sample'`.
    pub sample: String,
    /// The line in `source_file`, if known.
    pub line_number: Option<u64>,
    /// The column in `source_file`, if known.
    pub column_number: Option<u64>,
    /// The HTTP status of the page.
    pub status_code: Option<u64>,
    /// The browser's user agent (Reporting API reports only).
    pub user_agent: Option<String>,
}

type Callback = Arc<dyn Fn(CspViolation) + Send + Sync>;

/// A service that receives CSP violation reports: mount it at the URL of a
/// policy's `report-uri` and of the `report-to` endpoint.
///
/// - `POST` with `Content-Type: application/csp-report` (from `report-uri`)
///   or `application/reports+json` (from `report-to`): parsed, each
///   violation logged as a `tracing` event (reason `csp_violation`) and
///   handed to the [`on_report`](Self::on_report) callback; `204 No
///   Content`.
/// - Other methods: `405` with `Allow: POST`. Other content types: `415`.
///   Bodies over the cap ([`DEFAULT_MAX_REPORT_BODY`] unless set with
///   [`max_body`](Self::max_body)): `413`. Malformed JSON: `400`.
///
/// Reports are sent by any browser that loads a page, so the endpoint is
/// public and its input untrusted: keep the cap small and put a rate limit
/// in front of it if reports feed anything costly.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::Router;
/// use tower_perimeter::csp::ReportReceiver;
///
/// let receiver = ReportReceiver::new().on_report(|violation| {
///     eprintln!("CSP blocked {} ({})", violation.blocked_url, violation.effective_directive);
/// });
/// let app: Router = Router::new().route_service("/csp-reports", receiver);
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ReportReceiver {
    max_body: usize,
    callback: Option<Callback>,
}

impl Default for ReportReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ReportReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportReceiver")
            .field("max_body", &self.max_body)
            .field("callback", &self.callback.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

impl ReportReceiver {
    /// A receiver with the default body cap and no callback (violations are
    /// only logged).
    pub fn new() -> Self {
        Self {
            max_body: DEFAULT_MAX_REPORT_BODY,
            callback: None,
        }
    }

    /// The largest body accepted, in bytes.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Called once per violation, on the task serving the request; hand
    /// slow work to a channel.
    pub fn on_report<F>(mut self, callback: F) -> Self
    where
        F: Fn(CspViolation) + Send + Sync + 'static,
    {
        self.callback = Some(Arc::new(callback));
        self
    }
}

fn answer(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *res.status_mut() = status;
    if !message.is_empty() {
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    res
}

fn reject(
    status: StatusCode,
    reason: &'static str,
    message: &'static str,
) -> Response<Full<Bytes>> {
    event!(
        info,
        reason,
        status = status.as_u16(),
        "CSP report rejected"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = reason;
    answer(status, message)
}

impl<B> Service<Request<B>> for ReportReceiver
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let max_body = self.max_body;
        let callback = self.callback.clone();
        Box::pin(async move { Ok(receive(req, max_body, callback).await) })
    }
}

async fn receive<B>(
    req: Request<B>,
    max_body: usize,
    callback: Option<Callback>,
) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.method() != Method::POST {
        let mut res = reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "csp_report_method",
            "Method Not Allowed",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return res;
    }
    let mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let format = match mime.as_deref() {
        Some("application/csp-report") => ReportFormat::CspReport,
        Some("application/reports+json") => ReportFormat::ReportingApi,
        _ => return reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "csp_report_content_type",
            "Unsupported Media Type: expected application/csp-report or application/reports+json",
        ),
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body as u64) {
        return reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            "csp_report_too_large",
            "Payload Too Large",
        );
    }
    let body = match Limited::new(req.into_body(), max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "csp_report_too_large",
                "Payload Too Large",
            )
        }
        Err(_) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "csp_report_body",
                "Bad Request: unreadable body",
            )
        }
    };
    let violations = match parse(format, &body) {
        Some(v) => v,
        None => {
            return reject(
                StatusCode::BAD_REQUEST,
                "csp_report_malformed",
                "Bad Request: not a CSP violation report",
            )
        }
    };
    for violation in violations {
        event!(
            warn,
            reason = "csp_violation",
            directive = ?truncate(&violation.effective_directive),
            blocked = ?truncate(&violation.blocked_url),
            document = ?truncate(&violation.document_url),
            disposition = ?truncate(&violation.disposition),
            "Content-Security-Policy violation reported"
        );
        if let Some(callback) = &callback {
            callback(violation);
        }
    }
    answer(StatusCode::NO_CONTENT, "")
}

#[cfg(feature = "tracing")]
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses a report body; `None` if it is not a report of that format.
pub(crate) fn parse(format: ReportFormat, body: &[u8]) -> Option<Vec<CspViolation>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match format {
        ReportFormat::CspReport => {
            let report = value.as_object()?.get("csp-report")?.as_object()?;
            Some(vec![from_csp_report(report)])
        }
        ReportFormat::ReportingApi => {
            let reports = value.as_array()?;
            let mut out = Vec::new();
            for report in reports.iter().take(MAX_REPORTS_PER_BODY) {
                let report = report.as_object()?;
                if report.get("type").and_then(Value::as_str) != Some("csp-violation") {
                    continue;
                }
                let body = report.get("body")?.as_object()?;
                let mut violation = from_reporting_api(body);
                violation.user_agent = report
                    .get("user_agent")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if violation.document_url.is_empty() {
                    violation.document_url = text(report, "url");
                }
                out.push(violation);
            }
            Some(out)
        }
    }
}

fn text(map: &Map<String, Value>, key: &str) -> String {
    match map.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn number(map: &Map<String, Value>, key: &str) -> Option<u64> {
    match map.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn from_csp_report(r: &Map<String, Value>) -> CspViolation {
    let effective = text(r, "effective-directive");
    CspViolation {
        format: ReportFormat::CspReport,
        document_url: text(r, "document-uri"),
        blocked_url: text(r, "blocked-uri"),
        effective_directive: if effective.is_empty() {
            text(r, "violated-directive")
        } else {
            effective
        },
        original_policy: redact_nonces(&text(r, "original-policy")),
        disposition: text(r, "disposition"),
        referrer: text(r, "referrer"),
        source_file: text(r, "source-file"),
        sample: text(r, "script-sample"),
        line_number: number(r, "line-number"),
        column_number: number(r, "column-number"),
        status_code: number(r, "status-code"),
        user_agent: None,
    }
}

fn from_reporting_api(b: &Map<String, Value>) -> CspViolation {
    CspViolation {
        format: ReportFormat::ReportingApi,
        document_url: text(b, "documentURL"),
        blocked_url: text(b, "blockedURL"),
        effective_directive: text(b, "effectiveDirective"),
        original_policy: redact_nonces(&text(b, "originalPolicy")),
        disposition: text(b, "disposition"),
        referrer: text(b, "referrer"),
        source_file: text(b, "sourceFile"),
        sample: text(b, "sample"),
        line_number: number(b, "lineNumber"),
        column_number: number(b, "columnNumber"),
        status_code: number(b, "statusCode"),
        user_agent: None,
    }
}

/// Replaces the value of every `'nonce-…'` source with `…`.
fn redact_nonces(policy: &str) -> String {
    const MARK: &str = "'nonce-";
    let mut out = String::with_capacity(policy.len());
    let mut rest = policy;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i]);
        out.push_str("'nonce-…'");
        let after = &rest[i + MARK.len()..];
        let end = after
            .find(|c: char| {
                !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'))
            })
            .unwrap_or(after.len());
        rest = after[end..].strip_prefix('\'').unwrap_or(&after[end..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex;

    const CHROME_CSP_REPORT: &str = r#"{"csp-report":{"document-uri":"http://127.0.0.1:3000/","referrer":"","violated-directive":"script-src-elem","effective-directive":"script-src-elem","original-policy":"script-src 'nonce-AbC123xyz_-AbC123xyz_-AB' 'strict-dynamic'; report-uri /csp-reports","disposition":"enforce","blocked-uri":"inline","line-number":12,"column-number":9,"source-file":"http://127.0.0.1:3000/","status-code":200,"script-sample":""}}"#;

    const REPORTING_API: &str = r#"[{"age":10,"body":{"blockedURL":"inline","columnNumber":9,"disposition":"enforce","documentURL":"https://app.example.com/","effectiveDirective":"script-src-elem","lineNumber":3,"originalPolicy":"script-src 'nonce-xyz'; report-to csp","referrer":"","sample":"","sourceFile":"https://app.example.com/","statusCode":200},"type":"csp-violation","url":"https://app.example.com/","user_agent":"Mozilla/5.0"},{"age":1,"body":{"id":"x"},"type":"deprecation","url":"https://app.example.com/","user_agent":"Mozilla/5.0"}]"#;

    async fn post(receiver: &mut ReportReceiver, content_type: &str, body: &str) -> StatusCode {
        let req = Request::post("/csp-reports")
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        receiver.call(req).await.unwrap().status()
    }

    fn collecting() -> (ReportReceiver, Arc<Mutex<Vec<CspViolation>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let receiver = ReportReceiver::new().on_report(move |v| sink.lock().unwrap().push(v));
        (receiver, seen)
    }

    #[tokio::test]
    async fn csp_report_is_parsed_and_handed_to_the_callback() {
        let (mut receiver, seen) = collecting();
        let status = post(&mut receiver, "application/csp-report", CHROME_CSP_REPORT).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].effective_directive, "script-src-elem");
        assert_eq!(seen[0].blocked_url, "inline");
        assert_eq!(seen[0].line_number, Some(12));
        assert_eq!(seen[0].format, ReportFormat::CspReport);
    }

    #[tokio::test]
    async fn reporting_api_reports_keep_only_csp_violations() {
        let (mut receiver, seen) = collecting();
        let status = post(&mut receiver, "application/reports+json", REPORTING_API).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].document_url, "https://app.example.com/");
        assert_eq!(seen[0].user_agent.as_deref(), Some("Mozilla/5.0"));
        assert_eq!(seen[0].format, ReportFormat::ReportingApi);
    }

    #[tokio::test]
    async fn nonces_are_removed_from_the_reported_policy() {
        let (mut receiver, seen) = collecting();
        post(&mut receiver, "application/csp-report", CHROME_CSP_REPORT).await;
        let policy = seen.lock().unwrap()[0].original_policy.clone();
        assert_eq!(
            policy,
            "script-src 'nonce-…' 'strict-dynamic'; report-uri /csp-reports"
        );
    }

    #[tokio::test]
    async fn other_content_types_get_415() {
        let (mut receiver, seen) = collecting();
        for ct in [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
        ] {
            assert_eq!(
                post(&mut receiver, ct, CHROME_CSP_REPORT).await,
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            );
        }
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn content_type_parameters_and_case_are_accepted() {
        let (mut receiver, _) = collecting();
        let status = post(
            &mut receiver,
            "Application/CSP-Report; charset=utf-8",
            CHROME_CSP_REPORT,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn oversized_body_gets_413() {
        let (receiver, seen) = collecting();
        let mut receiver = receiver.max_body(100);
        let status = post(&mut receiver, "application/csp-report", CHROME_CSP_REPORT).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn malformed_json_gets_400() {
        let (mut receiver, _) = collecting();
        for body in ["{", "[]", "{\"other\":1}", "null"] {
            assert_eq!(
                post(&mut receiver, "application/csp-report", body).await,
                StatusCode::BAD_REQUEST,
                "{body}"
            );
        }
        assert_eq!(
            post(&mut receiver, "application/reports+json", "{}").await,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn get_gets_405_with_allow() {
        let mut receiver = ReportReceiver::new();
        let req = Request::get("/csp-reports")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = receiver.call(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "POST");
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(ReportFormat::CspReport, &body);
            let _ = parse(ReportFormat::ReportingApi, &body);
        }

        #[test]
        fn redacted_policy_never_contains_the_nonce(nonce in "[A-Za-z0-9_-]{8,32}", prefix in "[a-z' -]{0,20}") {
            let policy = format!("{prefix}script-src 'nonce-{nonce}' 'self'");
            let redacted = redact_nonces(&policy);
            prop_assert!(!redacted.contains(&nonce));
        }
    }
}
