//! The response future and the response rewrite.

use super::html::{ResponseBody, Substituter};
use super::layer::{Config, CspOverride, ExistingPolicy};
use super::nonce::CspNonce;
use super::policy::Policy;
use http::header::{self, Entry, HeaderName};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// `Reporting-Endpoints` (not yet in the `http` crate).
const REPORTING_ENDPOINTS: HeaderName = HeaderName::from_static("reporting-endpoints");

pin_project! {
    /// Response future of [`Csp`](super::Csp).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        nonce: CspNonce,
        config: Arc<Config>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, nonce: CspNonce, config: Arc<Config>) -> Self {
        Self {
            inner,
            nonce,
            config,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(apply(res, *this.nonce, this.config)))
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|mime| {
            mime.eq_ignore_ascii_case("text/html")
                || mime.eq_ignore_ascii_case("application/xhtml+xml")
        })
}

fn is_encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// Sets one policy header according to the layer's rule for a handler's own
/// header. Returns whether the layer's policy was sent.
fn set_policy(
    headers: &mut HeaderMap,
    name: HeaderName,
    policy: Option<&Policy>,
    nonce: &CspNonce,
    existing: ExistingPolicy,
) -> bool {
    let Some(policy) = policy else {
        return false;
    };
    match headers.entry(name) {
        Entry::Vacant(entry) => {
            entry.insert(policy.header_value(nonce));
        }
        Entry::Occupied(mut entry) => match existing {
            ExistingPolicy::Keep => {
                event!(
                    debug,
                    reason = "csp_handler_policy_kept",
                    header = %entry.key(),
                    "the handler set its own policy; keeping it"
                );
                return false;
            }
            ExistingPolicy::Replace => {
                entry.insert(policy.header_value(nonce));
            }
            ExistingPolicy::Append => entry.append(policy.header_value(nonce)),
        },
    }
    policy.uses_nonce()
}

pub(crate) fn apply<B>(
    res: Response<B>,
    nonce: CspNonce,
    config: &Config,
) -> Response<ResponseBody<B>> {
    let (mut parts, body) = res.into_parts();
    let choice = parts.extensions.remove::<CspOverride>();
    let status = parts.status;
    // A 304 revalidates a page the browser already holds, with the nonce it
    // was sent with; new policy headers would replace the stored ones and
    // break that page. Informational responses carry no page.
    if status == StatusCode::NOT_MODIFIED || status.is_informational() {
        return Response::from_parts(parts, ResponseBody::passthrough(body));
    }
    // Only look at the content type when a setting depends on it.
    let html = (config.html_only || config.placeholder.is_some()) && is_html(&parts.headers);
    let (enforce, report_only) = match &choice {
        None => (config.enforce.as_ref(), config.report_only.as_ref()),
        Some(CspOverride::Skip) => (None, None),
        Some(CspOverride::Enforce(p)) => (Some(p), config.report_only.as_ref()),
        Some(CspOverride::ReportOnly(p)) => (config.enforce.as_ref(), Some(p)),
        Some(CspOverride::Policies {
            enforce,
            report_only,
        }) => (enforce.as_ref(), report_only.as_ref()),
    };
    let mut nonce_sent = false;
    if html || !config.html_only {
        let headers = &mut parts.headers;
        let sent_enforce = set_policy(
            headers,
            header::CONTENT_SECURITY_POLICY,
            enforce,
            &nonce,
            config.existing,
        );
        let sent_report_only = set_policy(
            headers,
            header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
            report_only,
            &nonce,
            config.existing,
        );
        nonce_sent = sent_enforce || sent_report_only;
        if let Some(endpoints) = &config.reporting_endpoints {
            let reports_to = enforce
                .into_iter()
                .chain(report_only)
                .any(|p| p.report_to_endpoint().is_some());
            if reports_to {
                if let Entry::Vacant(entry) = headers.entry(REPORTING_ENDPOINTS) {
                    entry.insert(endpoints.clone());
                }
            }
        }
    }
    let body = match &config.placeholder {
        // A range response's offsets would no longer match, and an encoded
        // body cannot be searched; both are left alone.
        Some(placeholder)
            if html
                && !is_encoded(&parts.headers)
                && status != StatusCode::PARTIAL_CONTENT
                && status != StatusCode::NO_CONTENT =>
        {
            parts.headers.remove(header::CONTENT_LENGTH);
            nonce_sent = true;
            ResponseBody::substituting(body, Substituter::new(placeholder.clone(), nonce))
        }
        _ => ResponseBody::passthrough(body),
    };
    if nonce_sent && config.cache_control {
        if let Entry::Vacant(entry) = parts.headers.entry(header::CACHE_CONTROL) {
            entry.insert(HeaderValue::from_static("private, no-store"));
        }
    }
    Response::from_parts(parts, body)
}
