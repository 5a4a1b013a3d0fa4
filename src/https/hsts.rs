//! Middleware that adds [`Strict-Transport-Security`] ([RFC 6797]) to
//! responses to secure requests.
//!
//! ```
//! use http::{header::STRICT_TRANSPORT_SECURITY, Request};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_perimeter::https::{HstsLayer, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hsts = HstsLayer::builder()
//!     .max_age(Duration::from_secs(63_072_000))
//!     .include_subdomains()
//!     .preload()
//!     .build()?;
//! let svc = ServiceBuilder::new().layer(hsts).service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//! });
//!
//! let mut req = Request::get("/").header("host", "example.com").body(())?;
//! req.extensions_mut().insert(Transport::Tls);
//! let res = svc.clone().oneshot(req).await?;
//! assert_eq!(
//!     res.headers()[STRICT_TRANSPORT_SECURITY],
//!     "max-age=63072000; includeSubDomains; preload"
//! );
//!
//! // never over plain HTTP (RFC 6797 section 7.2)
//! let mut req = Request::get("/").header("host", "example.com").body(())?;
//! req.extensions_mut().insert(Transport::Plain);
//! let res = svc.oneshot(req).await?;
//! assert!(!res.headers().contains_key(STRICT_TRANSPORT_SECURITY));
//! # Ok(()) }
//! ```
//!
//! The header is added only when the request is secure (as decided by
//! [`TrustedProxies`]), never to a response that already has one (the
//! handler's own wins), and not for `localhost` or IP-literal hosts unless
//! [`include_local_hosts`](HstsBuilder::include_local_hosts) is set
//! (browsers ignore it there anyway, RFC 6797 section 8.1).
//!
//! # Deployment caveat
//!
//! HSTS is sticky: a browser that saw `max-age=31536000` refuses plain HTTP
//! to that host for a year. Start with a short `max-age`, add
//! `includeSubDomains` only when every subdomain serves HTTPS, and ask for
//! `preload` only when you mean it. To take HSTS back, serve
//! [`HstsLayer::expire`] (`max-age=0`) over HTTPS for a while.
//!
//! [`Strict-Transport-Security`]: https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Strict-Transport-Security
//! [RFC 6797]: https://www.rfc-editor.org/rfc/rfc6797

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::header::{HeaderValue, STRICT_TRANSPORT_SECURITY};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::forwarded::TrustedProxies;
use crate::ConfigError;

/// One year, the least `max-age` the HSTS preload list accepts.
pub const PRELOAD_MIN_MAX_AGE: Duration = Duration::from_secs(31_536_000);

#[derive(Clone, Debug)]
struct Config {
    value: HeaderValue,
    include_local: bool,
    proxies: TrustedProxies,
}

/// Layer that adds `Strict-Transport-Security` to responses to secure
/// requests; see the [module docs](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct HstsLayer {
    config: Arc<Config>,
}

/// Builder of [`HstsLayer`], from [`HstsLayer::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct HstsBuilder {
    max_age: Duration,
    include_subdomains: bool,
    preload: bool,
    include_local: bool,
    proxies: TrustedProxies,
}

impl HstsLayer {
    /// A builder, starting from `max-age` one year, no `includeSubDomains`,
    /// no `preload`.
    pub fn builder() -> HstsBuilder {
        HstsBuilder {
            max_age: PRELOAD_MIN_MAX_AGE,
            include_subdomains: false,
            preload: false,
            include_local: false,
            proxies: TrustedProxies::new(),
        }
    }

    /// `Strict-Transport-Security: max-age=<max_age in whole seconds>`.
    pub fn new(max_age: Duration) -> Self {
        Self::from_value(
            header_value(max_age.as_secs(), false, false),
            false,
            TrustedProxies::new(),
        )
    }

    /// `Strict-Transport-Security: max-age=0`: tells browsers to forget an
    /// earlier HSTS policy for this host (RFC 6797 section 6.1.1).
    pub fn expire() -> Self {
        Self::new(Duration::ZERO)
    }

    fn from_value(value: HeaderValue, include_local: bool, proxies: TrustedProxies) -> Self {
        Self {
            config: Arc::new(Config {
                value,
                include_local,
                proxies,
            }),
        }
    }

    /// Decides "secure" with `proxies` (default: trust nobody). Give it the
    /// same value as the redirect layer.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        Arc::make_mut(&mut self.config).proxies = proxies;
        self
    }

    /// The header value this layer sends.
    pub fn header_value(&self) -> &HeaderValue {
        &self.config.value
    }
}

impl HstsBuilder {
    /// `max-age`, in whole seconds (fractions are dropped).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Adds `includeSubDomains`.
    pub fn include_subdomains(mut self) -> Self {
        self.include_subdomains = true;
        self
    }

    /// Adds `preload`; [`build`](HstsBuilder::build) then requires
    /// `includeSubDomains` and a `max-age` of at least one year, as the
    /// preload list does.
    pub fn preload(mut self) -> Self {
        self.preload = true;
        self
    }

    /// Also sends the header for `localhost` and IP-literal hosts.
    pub fn include_local_hosts(mut self) -> Self {
        self.include_local = true;
        self
    }

    /// Decides "secure" with `proxies` (default: trust nobody).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// The layer.
    ///
    /// # Errors
    ///
    /// If `preload` was asked without `includeSubDomains` or with a `max-age`
    /// under one year.
    pub fn build(self) -> Result<HstsLayer, ConfigError> {
        if self.preload {
            if !self.include_subdomains {
                return Err(ConfigError::new(
                    "https",
                    "HSTS preload requires includeSubDomains",
                ));
            }
            if self.max_age < PRELOAD_MIN_MAX_AGE {
                return Err(ConfigError::new(
                    "https",
                    "HSTS preload requires a max-age of at least one year (31536000 seconds)",
                ));
            }
        }
        Ok(HstsLayer::from_value(
            header_value(
                self.max_age.as_secs(),
                self.include_subdomains,
                self.preload,
            ),
            self.include_local,
            self.proxies,
        ))
    }
}

fn header_value(max_age: u64, include_subdomains: bool, preload: bool) -> HeaderValue {
    let mut v = format!("max-age={max_age}");
    if include_subdomains {
        v.push_str("; includeSubDomains");
    }
    if preload {
        v.push_str("; preload");
    }
    // Digits, letters, `=`, `;` and spaces only: always a valid value.
    HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static("max-age=0"))
}

impl<S> Layer<S> for HstsLayer {
    type Service = Hsts<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hsts {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Service that adds `Strict-Transport-Security`; made by [`HstsLayer`].
#[derive(Clone, Debug)]
pub struct Hsts<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Hsts<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Hsts<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let info = self.config.proxies.resolve_request(&req);
        let local = info
            .host()
            .is_some_and(|h| h.is_localhost() || h.is_ip_literal());
        let header = (info.is_secure() && (self.config.include_local || !local))
            .then(|| self.config.value.clone());
        ResponseFuture {
            future: self.inner.call(req),
            header,
        }
    }
}

pin_project! {
    /// Response future of [`Hsts`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        header: Option<HeaderValue>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("header", &self.header)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.future.poll(cx))?;
        if let Some(value) = this.header.take() {
            if !res.headers().contains_key(STRICT_TRANSPORT_SECURITY) {
                res.headers_mut().insert(STRICT_TRANSPORT_SECURITY, value);
            }
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::https::{PeerAddr, Transport};
    use std::convert::Infallible;
    use tower::ServiceExt;

    async fn sts(
        layer: HstsLayer,
        transport: Transport,
        host: &str,
        own: Option<&'static str>,
    ) -> Option<String> {
        let svc = layer.layer(tower::service_fn(move |_req: Request<()>| async move {
            let mut res = Response::new(());
            if let Some(v) = own {
                res.headers_mut()
                    .insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(v));
            }
            Ok::<_, Infallible>(res)
        }));
        let mut req = Request::get("/").header("host", host).body(()).unwrap();
        req.extensions_mut().insert(transport);
        let res = svc.oneshot(req).await.unwrap();
        res.headers()
            .get(STRICT_TRANSPORT_SECURITY)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn secure_response_gets_the_header() {
        let v = sts(
            HstsLayer::new(Duration::from_millis(86_400_900)),
            Transport::Tls,
            "example.com",
            None,
        )
        .await;
        assert_eq!(v.as_deref(), Some("max-age=86400"));
    }

    #[tokio::test]
    async fn plain_response_never_gets_the_header() {
        assert_eq!(
            sts(
                HstsLayer::new(Duration::from_secs(60)),
                Transport::Plain,
                "example.com",
                None
            )
            .await,
            None
        );
    }

    #[tokio::test]
    async fn handler_header_is_not_overwritten() {
        let v = sts(
            HstsLayer::new(Duration::from_secs(60)),
            Transport::Tls,
            "example.com",
            Some("max-age=5"),
        )
        .await;
        assert_eq!(v.as_deref(), Some("max-age=5"));
    }

    #[tokio::test]
    async fn localhost_and_ip_literals_are_skipped_unless_asked() {
        for host in ["localhost:8443", "app.localhost", "127.0.0.1:8443", "[::1]"] {
            assert_eq!(
                sts(
                    HstsLayer::new(Duration::from_secs(60)),
                    Transport::Tls,
                    host,
                    None
                )
                .await,
                None,
                "{host}"
            );
            let layer = HstsLayer::builder()
                .max_age(Duration::from_secs(60))
                .include_local_hosts()
                .build()
                .unwrap();
            assert_eq!(
                sts(layer, Transport::Tls, host, None).await.as_deref(),
                Some("max-age=60"),
                "{host}"
            );
        }
    }

    #[tokio::test]
    async fn expire_sends_max_age_zero() {
        assert_eq!(
            sts(HstsLayer::expire(), Transport::Tls, "example.com", None)
                .await
                .as_deref(),
            Some("max-age=0")
        );
    }

    #[test]
    fn preload_needs_one_year_and_subdomains() {
        let err = HstsLayer::builder().preload().build().unwrap_err();
        assert!(err.message().contains("includeSubDomains"));
        let err = HstsLayer::builder()
            .max_age(Duration::from_secs(31_535_999))
            .include_subdomains()
            .preload()
            .build()
            .unwrap_err();
        assert!(err.message().contains("one year"));
        let ok = HstsLayer::builder()
            .include_subdomains()
            .preload()
            .build()
            .unwrap();
        assert_eq!(
            ok.header_value(),
            "max-age=31536000; includeSubDomains; preload"
        );
    }

    #[tokio::test]
    async fn secure_via_trusted_proxy_gets_the_header() {
        let layer = HstsLayer::new(Duration::from_secs(60))
            .trusted_proxies(TrustedProxies::new().trust("10.0.0.0/8").unwrap());
        let svc = layer.layer(tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        let mut req = Request::get("/")
            .header("host", "example.com")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(PeerAddr("10.0.0.1:1".parse().unwrap()));
        let res = svc.clone().oneshot(req).await.unwrap();
        assert!(res.headers().contains_key(STRICT_TRANSPORT_SECURITY));
        // the same header from an untrusted peer
        let mut req = Request::get("/")
            .header("host", "example.com")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(PeerAddr("192.0.2.1:1".parse().unwrap()));
        let res = svc.oneshot(req).await.unwrap();
        assert!(!res.headers().contains_key(STRICT_TRANSPORT_SECURITY));
    }
}
