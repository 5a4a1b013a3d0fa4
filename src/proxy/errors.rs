//! The proxy's error answers: one JSON shape for every status.

use super::FromUpstream;
use crate::body::PerimeterBody;
use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::LengthLimitError;
use hyper_util::client::legacy;
use pin_project_lite::pin_project;
use std::error::Error as _;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// A response with `status` and the proxy's JSON error body,
/// `{"error":"<reason>","status":<code>}`, where `<reason>` is the status's
/// canonical reason in snake case (`bad_gateway`, `gateway_timeout`,
/// `payload_too_large`).
///
/// ```
/// use http::StatusCode;
/// use http_body_util::{BodyExt, Full};
/// use tower_perimeter::proxy::json_error;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let res = json_error::<Full<bytes::Bytes>>(StatusCode::BAD_GATEWAY);
/// assert_eq!(res.headers()["content-type"], "application/json");
/// let body = res.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(&body[..], br#"{"error":"bad_gateway","status":502}"#);
/// # }
/// ```
pub fn json_error<B>(status: StatusCode) -> Response<PerimeterBody<B>> {
    let reason: String = status
        .canonical_reason()
        .unwrap_or("error")
        .chars()
        .filter_map(|c| match c {
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' => Some(c),
            ' ' | '-' => Some('_'),
            _ => None,
        })
        .collect();
    let body = format!("{{\"error\":\"{reason}\",\"status\":{}}}", status.as_u16());
    let mut res = Response::new(PerimeterBody::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Marks an HTTP/1.1 answer given before the request body was read with
/// `Connection: close`: the server will not read the rest of the body, so the
/// connection cannot carry another request, and the client should know
/// before it tries.
pub(crate) fn close_connection<B>(res: &mut Response<B>) {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Maps a failed upstream exchange to `413` (the request body went over a
/// limit, this proxy's or an outer `RequestBodyLimitLayer`'s) or `502`.
pub(crate) fn upstream_error<B>(err: &legacy::Error) -> Response<PerimeterBody<B>> {
    let mut source = err.source();
    while let Some(e) = source {
        if e.is::<LengthLimitError>() {
            event!(
                warn,
                reason = "body_too_large",
                status = 413,
                "request body over the limit"
            );
            return json_error(StatusCode::PAYLOAD_TOO_LARGE);
        }
        source = e.source();
    }
    if err.is_connect() {
        event!(
            warn,
            reason = "upstream_connect",
            status = 502,
            error = %ErrorChain(err),
            "upstream unreachable"
        );
    } else {
        event!(
            warn,
            reason = "upstream_error",
            status = 502,
            error = %ErrorChain(err),
            "upstream exchange failed"
        );
    }
    json_error(StatusCode::BAD_GATEWAY)
}

/// Displays an error and its sources on one line.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
struct ErrorChain<'a>(&'a legacy::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// Statuses whose bodies [`JsonErrors`] rewrites.
fn is_gateway_error(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::REQUEST_TIMEOUT
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Layer that gives the error answers of layers between it and the
/// [`ReverseProxy`](super::ReverseProxy) the proxy's JSON error shape.
///
/// tower-http's `RequestBodyLimitLayer` answers `413` in plain text and its
/// `TimeoutLayer` with an empty body. Placed outside them, this layer
/// replaces the body of any `408`, `413`, `502`, `503` or `504` response
/// that did not come from the upstream (it lacks the
/// [`FromUpstream`] marker) with [`json_error`]'s body, so a client sees
/// one shape whichever layer answered. Upstream responses pass untouched.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct JsonErrorsLayer;

impl JsonErrorsLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for JsonErrorsLayer {
    type Service = JsonErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonErrors { inner }
    }
}

/// Middleware made by [`JsonErrorsLayer`].
#[derive(Clone, Copy, Debug)]
pub struct JsonErrors<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JsonErrors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<PerimeterBody<ResBody>>;
    type Error = S::Error;
    type Future = JsonErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let http1 = req.version() <= Version::HTTP_11;
        JsonErrorsFuture {
            inner: self.inner.call(req),
            http1,
        }
    }
}

pin_project! {
    /// Response future of [`JsonErrors`].
    pub struct JsonErrorsFuture<F> {
        #[pin]
        inner: F,
        http1: bool,
    }
}

impl<F> fmt::Debug for JsonErrorsFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonErrorsFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for JsonErrorsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<PerimeterBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        if is_gateway_error(res.status()) && res.extensions().get::<FromUpstream>().is_none() {
            let (parts, _body) = res.into_parts();
            let mut json = json_error(parts.status);
            // Keep what outer layers rely on (request ids, say) but not the
            // old body's framing.
            for (name, value) in &parts.headers {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    json.headers_mut().append(name, value.clone());
                }
            }
            *json.extensions_mut() = parts.extensions;
            if parts.status == StatusCode::PAYLOAD_TOO_LARGE && *this.http1 {
                close_connection(&mut json);
            }
            return Poll::Ready(Ok(json));
        }
        Poll::Ready(Ok(res.map(PerimeterBody::inner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;

    async fn body_of<B>(res: Response<B>) -> String
    where
        B: http_body::Body,
        B::Error: fmt::Debug,
    {
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_local_413_closes_an_http1_connection() {
        for (version, close) in [(Version::HTTP_11, true), (Version::HTTP_2, false)] {
            let svc = JsonErrorsLayer::new().layer(tower::service_fn(|_r: Request<()>| async {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                Ok::<_, std::convert::Infallible>(res)
            }));
            let mut req = Request::new(());
            *req.version_mut() = version;
            let res = svc.oneshot(req).await.unwrap();
            assert_eq!(
                res.headers().get(header::CONNECTION).is_some(),
                close,
                "{version:?}"
            );
        }
    }

    #[tokio::test]
    async fn every_gateway_status_has_the_same_shape() {
        for (status, text) in [
            (413, r#"{"error":"payload_too_large","status":413}"#),
            (504, r#"{"error":"gateway_timeout","status":504}"#),
            (408, r#"{"error":"request_timeout","status":408}"#),
        ] {
            let res = json_error::<Full<Bytes>>(StatusCode::from_u16(status).unwrap());
            assert_eq!(res.status().as_u16(), status);
            assert_eq!(body_of(res).await, text);
        }
    }

    #[tokio::test]
    async fn local_413_gets_the_json_body() {
        let svc = JsonErrorsLayer::new().layer(tower::service_fn(|_req: Request<()>| async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"length limit exceeded")));
            *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            res.headers_mut()
                .insert("x-request-id", HeaderValue::from_static("abc"));
            Ok::<_, std::convert::Infallible>(res)
        }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "abc");
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(
            body_of(res).await,
            r#"{"error":"payload_too_large","status":413}"#
        );
    }

    #[tokio::test]
    async fn upstream_502_passes_untouched() {
        let svc = JsonErrorsLayer::new().layer(tower::service_fn(|_req: Request<()>| async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"upstream says no")));
            *res.status_mut() = StatusCode::BAD_GATEWAY;
            res.extensions_mut().insert(FromUpstream);
            Ok::<_, std::convert::Infallible>(res)
        }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(body_of(res).await, "upstream says no");
    }
}
