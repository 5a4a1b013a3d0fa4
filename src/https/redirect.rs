//! Middleware that sends plain-HTTP requests to HTTPS: a redirect for
//! browsers, a rejection for APIs, and always a rejection for a plain request
//! that carries credentials.
//!
//! ```
//! use http::{header::LOCATION, Request, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_perimeter::https::{HttpsRedirectLayer, PublicHosts, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hosts = PublicHosts::new().allow("example.com")?.map_port(8080, 8443);
//! let svc = ServiceBuilder::new()
//!     .layer(HttpsRedirectLayer::permanent(hosts)?.exempt_acme_challenge())
//!     .service_fn(|_req: Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) });
//!
//! let mut req = Request::post("/api/match?x=1").header("host", "example.com:8080").body(())?;
//! req.extensions_mut().insert(Transport::Plain);
//! let res = svc.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT); // 308: the body is kept
//! assert_eq!(res.headers()[LOCATION], "https://example.com:8443/api/match?x=1");
//! # Ok(()) }
//! ```
//!
//! # Order of decisions for a request that is not secure
//!
//! 1. It carries `Authorization`, `Proxy-Authorization` or `Cookie` (unless
//!    [`allow_credentials_over_http`](HttpsRedirectLayer::allow_credentials_over_http)):
//!    rejected (`403`, or the reject-mode status), with a `tracing` warning.
//!    The secret has already crossed the network in clear; a redirect would
//!    teach the client to send it that way again. Exempt paths are not spared.
//! 2. Exempt (ACME challenge, health path, predicate): passed to the service.
//! 3. Reject mode: `403`, or `426 Upgrade Required` with
//!    `Upgrade: TLS/1.2, HTTP/1.1`.
//! 4. Redirect mode: the host (trusted forwarded host, URI authority or
//!    `Host`) must be valid (else `400`) and on the [`PublicHosts`] list (else
//!    `400`, or `421` with
//!    [`misdirected_for_unknown_host`](HttpsRedirectLayer::misdirected_for_unknown_host)).
//!    The `Location` is `https://` + the allowed host and mapped port + the
//!    request's path and query, byte for byte. `GET`/`HEAD` get `301` (`302`
//!    temporary), other methods `308` (`307`), so a body is never turned into
//!    a `GET`. A request-target with no path (`CONNECT`, `OPTIONS *`) gets
//!    `400`.
//!
//! Secure requests pass through with a [`ClientInfo`] in their extensions.
//!
//! # Deployment caveat
//!
//! "Secure" is decided by [`TrustedProxies`]: mark each listener with
//! [`MarkTransportLayer`](super::MarkTransportLayer), and behind a
//! TLS-terminating proxy list the proxy's addresses, or every request looks
//! plain and is redirected forever. Give [`HstsLayer`](super::HstsLayer) the
//! same `TrustedProxies`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, PROXY_AUTHORIZATION,
    UPGRADE,
};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::forwarded::{ClientInfo, TrustedProxies};
use super::host::PublicHosts;
use crate::{ConfigError, PerimeterBody};

/// Prefix of ACME HTTP-01 challenge paths (RFC 8555 section 8.3).
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Paths exempted by [`HttpsRedirectLayer::exempt_health_paths`].
pub const HEALTH_PATHS: [&str; 4] = ["/health", "/healthz", "/livez", "/readyz"];

type Predicate = Arc<dyn Fn(&Method, &Uri, &HeaderMap) -> bool + Send + Sync>;

#[derive(Clone)]
enum Exemption {
    Acme,
    Path(PathAndQuery),
    Custom(Predicate),
}

impl Exemption {
    fn matches(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        match self {
            // RFC 8555: the token is base64url; nothing else may follow, so
            // `/.well-known/acme-challenge/../admin` is not exempt.
            Exemption::Acme => {
                (method == Method::GET || method == Method::HEAD)
                    && uri.query().is_none()
                    && uri
                        .path()
                        .strip_prefix(ACME_CHALLENGE_PREFIX)
                        .is_some_and(|token| {
                            !token.is_empty()
                                && token
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        })
            }
            Exemption::Path(path) => uri.path() == path.path(),
            Exemption::Custom(f) => f(method, uri, headers),
        }
    }
}

impl fmt::Debug for Exemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exemption::Acme => f.write_str("AcmeChallenge"),
            Exemption::Path(p) => f.debug_tuple("Path").field(&p.as_str()).finish(),
            Exemption::Custom(_) => f.write_str("Custom(<fn>)"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Redirect { permanent: bool },
    Reject(StatusCode),
}

#[derive(Clone, Debug)]
struct Config {
    hosts: PublicHosts,
    proxies: TrustedProxies,
    action: Action,
    reject_credentials: bool,
    unknown_host: StatusCode,
    exemptions: Vec<Exemption>,
}

/// Layer that redirects or rejects plain-HTTP requests; see the
/// [module docs](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct HttpsRedirectLayer {
    config: Arc<Config>,
}

impl HttpsRedirectLayer {
    fn with(hosts: PublicHosts, action: Action) -> Self {
        Self {
            config: Arc::new(Config {
                hosts,
                proxies: TrustedProxies::new(),
                action,
                reject_credentials: true,
                unknown_host: StatusCode::BAD_REQUEST,
                exemptions: Vec::new(),
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Redirects with `301 Moved Permanently` (`GET`, `HEAD`) or
    /// `308 Permanent Redirect` (other methods) to an HTTPS URL on `hosts`.
    ///
    /// # Errors
    ///
    /// If `hosts` is empty: a redirect target must never come from the
    /// request alone.
    pub fn permanent(hosts: PublicHosts) -> Result<Self, ConfigError> {
        Self::redirect(hosts, true)
    }

    /// Redirects with `302 Found` (`GET`, `HEAD`) or `307 Temporary Redirect`
    /// (other methods), which browsers do not cache; for trying things out.
    ///
    /// # Errors
    ///
    /// If `hosts` is empty.
    pub fn temporary(hosts: PublicHosts) -> Result<Self, ConfigError> {
        Self::redirect(hosts, false)
    }

    fn redirect(hosts: PublicHosts, permanent: bool) -> Result<Self, ConfigError> {
        if hosts.is_empty() {
            return Err(ConfigError::new(
                "https",
                "a redirect needs at least one public host (PublicHosts::allow)",
            ));
        }
        Ok(Self::with(hosts, Action::Redirect { permanent }))
    }

    /// Answers plain-HTTP requests with `403 Forbidden`, for APIs whose
    /// clients should fail loudly rather than follow a redirect.
    pub fn reject_forbidden() -> Self {
        Self::with(PublicHosts::new(), Action::Reject(StatusCode::FORBIDDEN))
    }

    /// Answers plain-HTTP requests with `426 Upgrade Required` and
    /// `Upgrade: TLS/1.2, HTTP/1.1` ([RFC 9110 section 15.5.22](https://www.rfc-editor.org/rfc/rfc9110#section-15.5.22)).
    pub fn reject_upgrade_required() -> Self {
        Self::with(
            PublicHosts::new(),
            Action::Reject(StatusCode::UPGRADE_REQUIRED),
        )
    }

    /// Decides "secure", client address and host with `proxies` (default:
    /// trust nobody).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.config().proxies = proxies;
        self
    }

    /// Lets plain-HTTP requests that carry `Authorization`,
    /// `Proxy-Authorization` or `Cookie` be redirected (or exempted) like any
    /// other. By default they are rejected.
    pub fn allow_credentials_over_http(mut self) -> Self {
        self.config().reject_credentials = false;
        self
    }

    /// Answers an unknown host with `421 Misdirected Request` instead of
    /// `400 Bad Request`.
    pub fn misdirected_for_unknown_host(mut self) -> Self {
        self.config().unknown_host = StatusCode::MISDIRECTED_REQUEST;
        self
    }

    /// Serves ACME HTTP-01 challenges (`GET`/`HEAD`
    /// `/.well-known/acme-challenge/<token>`, token in base64url, no query)
    /// over plain HTTP, as certificate authorities require.
    pub fn exempt_acme_challenge(mut self) -> Self {
        self.config().exemptions.push(Exemption::Acme);
        self
    }

    /// Serves the path `path` (exact match, any query) over plain HTTP.
    ///
    /// # Errors
    ///
    /// If `path` does not start with `/`, has a query, a fragment or
    /// characters not allowed in a path.
    pub fn exempt_path(mut self, path: &str) -> Result<Self, ConfigError> {
        let parsed = PathAndQuery::try_from(path)
            .ok()
            .filter(|p| p.path().starts_with('/') && p.query().is_none() && !path.contains('#'))
            .ok_or_else(|| {
                ConfigError::new(
                    "https",
                    format!("invalid exempt path {path:?}: expected /path"),
                )
            })?;
        self.config().exemptions.push(Exemption::Path(parsed));
        Ok(self)
    }

    /// Serves the usual health-check paths ([`HEALTH_PATHS`]) over plain HTTP,
    /// for load balancers that probe on the plain port.
    pub fn exempt_health_paths(mut self) -> Self {
        for p in HEALTH_PATHS {
            self.config()
                .exemptions
                .push(Exemption::Path(PathAndQuery::from_static(p)));
        }
        self
    }

    /// Serves requests for which `predicate(method, uri, headers)` is true
    /// over plain HTTP.
    pub fn exempt_if<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&Method, &Uri, &HeaderMap) -> bool + Send + Sync + 'static,
    {
        self.config()
            .exemptions
            .push(Exemption::Custom(Arc::new(predicate)));
        self
    }
}

impl<S> Layer<S> for HttpsRedirectLayer {
    type Service = HttpsRedirect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpsRedirect {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Service that redirects or rejects plain-HTTP requests; made by
/// [`HttpsRedirectLayer`].
#[derive(Clone, Debug)]
pub struct HttpsRedirect<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> HttpsRedirect<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpsRedirect<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<PerimeterBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let info = config.proxies.resolve_request(&req);
        config.proxies.strip_if_untrusted(&info, req.headers_mut());
        if info.is_secure() {
            req.extensions_mut().insert(info);
            return ResponseFuture::inner(self.inner.call(req));
        }
        if config.reject_credentials {
            if let Some(header) = credential_header(req.headers()) {
                event!(
                    warn,
                    reason = "credentials_over_plain_http",
                    header,
                    client = ?info.addr(),
                    "plain-HTTP request carried credentials; rejected, not redirected"
                );
                let _ = header;
                let status = match config.action {
                    Action::Reject(status) => status,
                    Action::Redirect { .. } => StatusCode::FORBIDDEN,
                };
                return ResponseFuture::ready(reject(
                    status,
                    "Credentials were sent over plain HTTP and were refused. Use HTTPS, and change the password if it was real.\n",
                ));
            }
        }
        if config
            .exemptions
            .iter()
            .any(|e| e.matches(req.method(), req.uri(), req.headers()))
        {
            req.extensions_mut().insert(info);
            return ResponseFuture::inner(self.inner.call(req));
        }
        let response = match config.action {
            Action::Reject(status) => {
                event!(
                    debug,
                    reason = "plain_http_rejected",
                    "plain-HTTP request rejected"
                );
                reject(status, "HTTPS is required.\n")
            }
            Action::Redirect { permanent } => redirect(config, &info, &req, permanent),
        };
        ResponseFuture::ready(response)
    }
}

/// The first credential-bearing header of `headers`.
fn credential_header(headers: &HeaderMap) -> Option<&'static str> {
    if headers.contains_key(AUTHORIZATION) {
        Some("authorization")
    } else if headers.contains_key(PROXY_AUTHORIZATION) {
        Some("proxy-authorization")
    } else if headers.contains_key(COOKIE) {
        Some("cookie")
    } else {
        None
    }
}

fn redirect<B, R>(
    config: &Config,
    info: &ClientInfo,
    req: &Request<R>,
    permanent: bool,
) -> Response<PerimeterBody<B>> {
    let Some(host) = info.host() else {
        event!(
            debug,
            reason = "missing_or_malformed_host",
            "plain-HTTP request with a bad host"
        );
        return reject(StatusCode::BAD_REQUEST, "Missing or malformed Host.\n");
    };
    let Some(authority) = config.hosts.https_authority(host) else {
        event!(
            debug,
            reason = "unknown_host",
            "plain-HTTP request for a host not on the list"
        );
        return reject(config.unknown_host, "Unknown host.\n");
    };
    let Some(path) = req
        .uri()
        .path_and_query()
        .filter(|p| p.path().starts_with('/'))
        .cloned()
    else {
        return reject(StatusCode::BAD_REQUEST, "Bad request-target.\n");
    };
    let location = Uri::builder()
        .scheme(Scheme::HTTPS)
        .authority(authority)
        .path_and_query(path)
        .build()
        .ok()
        .and_then(|uri| HeaderValue::try_from(uri.to_string()).ok());
    let Some(location) = location else {
        return reject(StatusCode::BAD_REQUEST, "Bad request-target.\n");
    };
    let safe_method = req.method() == Method::GET || req.method() == Method::HEAD;
    let status = match (permanent, safe_method) {
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
    };
    let mut res = Response::new(PerimeterBody::empty());
    *res.status_mut() = status;
    res.headers_mut().insert(LOCATION, location);
    res
}

fn reject<B>(status: StatusCode, message: &'static str) -> Response<PerimeterBody<B>> {
    let mut res = Response::new(PerimeterBody::full(message));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::UPGRADE_REQUIRED {
        res.headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("TLS/1.2, HTTP/1.1"));
    }
    res
}

pin_project! {
    /// Response future of [`HttpsRedirect`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<PerimeterBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    fn ready(response: Response<PerimeterBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Ready { .. } => "Ready",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<PerimeterBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let res = ready!(future.poll(cx))?;
                Poll::Ready(Ok(res.map(PerimeterBody::inner)))
            }
            // Polling again after completion is a caller bug; answer with a
            // 500 made here rather than panic.
            KindProj::Ready { response } => Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                reject(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "response already taken\n",
                )
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::https::{PeerAddr, Transport};
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    type Res = Response<PerimeterBody<Full<Bytes>>>;

    fn hosts() -> PublicHosts {
        PublicHosts::new()
            .allow("example.com")
            .unwrap()
            .allow("[2001:db8::1]")
            .unwrap()
            .map_port(8080, 8443)
    }

    async fn call_with(layer: HttpsRedirectLayer, req: Request<Full<Bytes>>) -> (Res, usize) {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let svc = layer.layer(tower::service_fn(move |req: Request<Full<Bytes>>| {
            h.fetch_add(1, Ordering::SeqCst);
            let info = req.extensions().get::<ClientInfo>().cloned();
            async move {
                assert!(info.is_some(), "passed requests carry ClientInfo");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
            }
        }));
        let res = svc.oneshot(req).await.unwrap();
        let n = hits.load(Ordering::SeqCst);
        (res, n)
    }

    fn plain(method: Method, target: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut r = b.body(Full::new(Bytes::from_static(b"payload"))).unwrap();
        r.extensions_mut().insert(Transport::Plain);
        r.extensions_mut()
            .insert(PeerAddr("203.0.113.9:5555".parse().unwrap()));
        r
    }

    fn location(res: &Res) -> &str {
        res.headers()[LOCATION].to_str().unwrap()
    }

    #[tokio::test]
    async fn get_is_redirected_permanently_with_path_and_query_kept() {
        let req = plain(
            Method::GET,
            "/a/%2e%2E/b;c?q=%20x&y=%ZZ",
            &[("host", "example.com:8080")],
        );
        let (res, hits) = call_with(HttpsRedirectLayer::permanent(hosts()).unwrap(), req).await;
        assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            location(&res),
            "https://example.com:8443/a/%2e%2E/b;c?q=%20x&y=%ZZ"
        );
        assert_eq!(hits, 0);
    }

    #[tokio::test]
    async fn head_gets_301_and_methods_with_bodies_get_308() {
        let layer = HttpsRedirectLayer::permanent(hosts()).unwrap();
        let (res, _) = call_with(
            layer.clone(),
            plain(Method::HEAD, "/", &[("host", "example.com")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
        for m in [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            let (res, hits) = call_with(
                layer.clone(),
                plain(m.clone(), "/x", &[("host", "example.com")]),
            )
            .await;
            assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT, "{m}");
            assert_eq!(location(&res), "https://example.com/x");
            assert_eq!(hits, 0);
        }
    }

    #[tokio::test]
    async fn temporary_variant_uses_302_and_307() {
        let layer = HttpsRedirectLayer::temporary(hosts()).unwrap();
        let (res, _) = call_with(
            layer.clone(),
            plain(Method::GET, "/", &[("host", "example.com")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FOUND);
        let (res, _) = call_with(layer, plain(Method::POST, "/", &[("host", "example.com")])).await;
        assert_eq!(res.status(), StatusCode::TEMPORARY_REDIRECT);
    }

    #[tokio::test]
    async fn ipv6_literal_host_stays_in_brackets() {
        let layer = HttpsRedirectLayer::permanent(hosts()).unwrap();
        let (res, _) = call_with(
            layer,
            plain(Method::GET, "/p", &[("host", "[2001:DB8:0::1]:8080")]),
        )
        .await;
        assert_eq!(location(&res), "https://[2001:db8::1]:8443/p");
    }

    #[tokio::test]
    async fn hostile_hosts_get_400_never_a_redirect() {
        let layer = HttpsRedirectLayer::permanent(hosts()).unwrap();
        let long = format!("{}.example.com", "a".repeat(300));
        for host in [
            "evil.example",
            "user@example.com",
            "example.com@evil.example",
            "example.com:99999",
            "example.com:0",
            "example.com:http",
            "example.com.evil.example",
            "2001:db8::1",
            "[2001:db8::1",
            "[::1]",
            "exa mple.com",
            long.as_str(),
            "",
            "example.com/evil",
        ] {
            let (res, hits) =
                call_with(layer.clone(), plain(Method::GET, "/", &[("host", host)])).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{host:?}");
            assert!(!res.headers().contains_key(LOCATION), "{host:?}");
            assert_eq!(hits, 0);
        }
        // no Host at all
        let (res, _) = call_with(layer, plain(Method::GET, "/", &[])).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn unknown_host_can_get_421() {
        let layer = HttpsRedirectLayer::permanent(hosts())
            .unwrap()
            .misdirected_for_unknown_host();
        let (res, _) = call_with(layer, plain(Method::GET, "/", &[("host", "evil.example")])).await;
        assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
    }

    #[tokio::test]
    async fn absolute_form_uses_uri_authority_not_host() {
        let layer = HttpsRedirectLayer::permanent(hosts()).unwrap();
        let req = plain(
            Method::GET,
            "http://evil.example/x",
            &[("host", "example.com")],
        );
        let (res, _) = call_with(layer.clone(), req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let req = plain(
            Method::GET,
            "http://example.com/x?y",
            &[("host", "evil.example")],
        );
        let (res, _) = call_with(layer, req).await;
        assert_eq!(location(&res), "https://example.com/x?y");
    }

    #[tokio::test]
    async fn request_target_without_path_gets_400() {
        let layer = HttpsRedirectLayer::permanent(hosts()).unwrap();
        let (res, _) = call_with(
            layer.clone(),
            plain(
                Method::CONNECT,
                "example.com:443",
                &[("host", "example.com")],
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let (res, _) = call_with(
            layer,
            plain(Method::OPTIONS, "*", &[("host", "example.com")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn secure_requests_pass_through() {
        let layer = HttpsRedirectLayer::permanent(hosts()).unwrap();
        let mut req = plain(
            Method::POST,
            "/",
            &[("host", "whatever"), ("authorization", "Basic eDp5")],
        );
        req.extensions_mut().insert(Transport::Tls);
        let (res, hits) = call_with(layer, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(hits, 1);
        assert_eq!(
            &res.into_body().collect().await.unwrap().to_bytes()[..],
            b"inner"
        );
    }

    #[tokio::test]
    async fn credentials_over_plain_http_are_rejected_not_redirected() {
        let layer = HttpsRedirectLayer::permanent(hosts()).unwrap();
        for (name, value) in [
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("proxy-authorization", "Basic eDp5"),
            ("cookie", "session=abc"),
        ] {
            let req = plain(
                Method::POST,
                "/api",
                &[("host", "example.com"), (name, value)],
            );
            let (res, hits) = call_with(layer.clone(), req).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
            assert!(!res.headers().contains_key(LOCATION));
            assert_eq!(hits, 0);
        }
    }

    #[cfg(feature = "tracing")]
    #[test]
    fn credentials_over_plain_http_log_a_warning_without_the_secret() {
        use std::sync::Mutex;

        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let mut svc = HttpsRedirectLayer::permanent(hosts())
            .unwrap()
            .layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }));
        let req = plain(
            Method::POST,
            "/api?token=hunter2",
            &[
                ("host", "example.com"),
                ("authorization", "Basic dXNlcjpodW50ZXIy"),
            ],
        );
        // The decision is taken in `call`, so the event is emitted there.
        let _future = tracing::subscriber::with_default(subscriber, || svc.call(req));
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("WARN"), "{log}");
        assert!(log.contains("credentials_over_plain_http"), "{log}");
        assert!(log.contains("authorization"), "{log}");
        assert!(
            !log.contains("dXNlcjpodW50ZXIy") && !log.contains("hunter2"),
            "{log}"
        );
    }

    #[tokio::test]
    async fn credentials_may_be_allowed_explicitly() {
        let layer = HttpsRedirectLayer::permanent(hosts())
            .unwrap()
            .allow_credentials_over_http();
        let req = plain(
            Method::GET,
            "/",
            &[("host", "example.com"), ("cookie", "a=b")],
        );
        let (res, _) = call_with(layer, req).await;
        assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    }

    #[tokio::test]
    async fn reject_mode_answers_403_or_426_with_upgrade() {
        let (res, hits) = call_with(
            HttpsRedirectLayer::reject_forbidden(),
            plain(Method::GET, "/", &[("host", "a")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(hits, 0);
        let (res, _) = call_with(
            HttpsRedirectLayer::reject_upgrade_required(),
            plain(Method::POST, "/", &[]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(res.headers()[UPGRADE], "TLS/1.2, HTTP/1.1");
        let req = plain(Method::GET, "/", &[("authorization", "Bearer t")]);
        let (res, _) = call_with(HttpsRedirectLayer::reject_upgrade_required(), req).await;
        assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
    }

    #[tokio::test]
    async fn acme_challenge_is_served_over_plain_http() {
        let layer = HttpsRedirectLayer::permanent(hosts())
            .unwrap()
            .exempt_acme_challenge();
        let req = plain(
            Method::GET,
            "/.well-known/acme-challenge/abc-DEF_123",
            &[("host", "example.com")],
        );
        let (res, hits) = call_with(layer.clone(), req).await;
        assert_eq!((res.status(), hits), (StatusCode::OK, 1));
        for target in [
            "/.well-known/acme-challenge/../admin",
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge/a/b",
            "/.well-known/acme-challenge/a%2fb",
            "/.well-known/acme-challenge/tok?x=1",
        ] {
            let (res, hits) = call_with(
                layer.clone(),
                plain(Method::GET, target, &[("host", "example.com")]),
            )
            .await;
            assert_eq!(
                (res.status(), hits),
                (StatusCode::MOVED_PERMANENTLY, 0),
                "{target}"
            );
        }
        let req = plain(
            Method::POST,
            "/.well-known/acme-challenge/tok",
            &[("host", "example.com")],
        );
        let (res, _) = call_with(layer, req).await;
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    }

    #[tokio::test]
    async fn health_paths_and_predicates_are_exempt() {
        let layer = HttpsRedirectLayer::reject_forbidden()
            .exempt_health_paths()
            .exempt_path("/status")
            .unwrap()
            .exempt_if(|m, uri, _| m == Method::GET && uri.path() == "/metrics");
        for target in ["/healthz", "/readyz?verbose", "/status", "/metrics"] {
            let (res, hits) = call_with(layer.clone(), plain(Method::GET, target, &[])).await;
            assert_eq!((res.status(), hits), (StatusCode::OK, 1), "{target}");
        }
        for target in ["/healthz/x", "/status/", "/metricsx"] {
            let (res, hits) = call_with(layer.clone(), plain(Method::GET, target, &[])).await;
            assert_eq!((res.status(), hits), (StatusCode::FORBIDDEN, 0), "{target}");
        }
    }

    #[tokio::test]
    async fn exempt_paths_do_not_spare_credentials() {
        let layer = HttpsRedirectLayer::reject_forbidden().exempt_health_paths();
        let (res, hits) = call_with(
            layer,
            plain(Method::GET, "/healthz", &[("authorization", "Basic eDp5")]),
        )
        .await;
        assert_eq!((res.status(), hits), (StatusCode::FORBIDDEN, 0));
    }

    #[tokio::test]
    async fn forged_forwarded_proto_from_untrusted_peer_is_redirected() {
        let layer = HttpsRedirectLayer::permanent(hosts())
            .unwrap()
            .trusted_proxies(TrustedProxies::new().trust("10.0.0.0/8").unwrap());
        let req = plain(
            Method::GET,
            "/",
            &[("host", "example.com"), ("x-forwarded-proto", "https")],
        );
        let (res, hits) = call_with(layer, req).await;
        assert_eq!((res.status(), hits), (StatusCode::MOVED_PERMANENTLY, 0));
    }

    #[tokio::test]
    async fn trusted_proxy_https_passes_and_its_host_is_used() {
        let layer = HttpsRedirectLayer::permanent(hosts())
            .unwrap()
            .trusted_proxies(TrustedProxies::new().trust("10.0.0.0/8").unwrap());
        let mut req = plain(
            Method::GET,
            "/",
            &[("host", "backend"), ("x-forwarded-proto", "https")],
        );
        req.extensions_mut()
            .insert(PeerAddr("10.1.1.1:80".parse().unwrap()));
        let (res, hits) = call_with(layer.clone(), req).await;
        assert_eq!((res.status(), hits), (StatusCode::OK, 1));
        // plain at the proxy: redirected to the forwarded (allowed) host
        let mut req = plain(
            Method::GET,
            "/x",
            &[
                ("host", "backend"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "example.com"),
            ],
        );
        req.extensions_mut()
            .insert(PeerAddr("10.1.1.1:80".parse().unwrap()));
        let (res, _) = call_with(layer.clone(), req).await;
        assert_eq!(location(&res), "https://example.com/x");
        // a forwarded host that is not allowed gets 400
        let mut req = plain(
            Method::GET,
            "/x",
            &[
                ("host", "example.com"),
                ("x-forwarded-host", "evil.example"),
            ],
        );
        req.extensions_mut()
            .insert(PeerAddr("10.1.1.1:80".parse().unwrap()));
        let (res, _) = call_with(layer, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn untrusted_forwarded_headers_are_stripped_before_the_handler() {
        let layer = HttpsRedirectLayer::reject_forbidden()
            .exempt_path("/open")
            .unwrap()
            .trusted_proxies(TrustedProxies::new().strip_untrusted(true));
        let svc = layer.layer(tower::service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{}",
                req.headers().contains_key("x-forwarded-for")
            )))))
        }));
        let mut req = Request::get("/open")
            .header("x-forwarded-for", "1.2.3.4")
            .body(())
            .unwrap();
        req.extensions_mut().insert(Transport::Plain);
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(
            &res.into_body().collect().await.unwrap().to_bytes()[..],
            b"false"
        );
    }

    #[test]
    fn empty_allow_list_and_bad_exempt_path_are_config_errors() {
        let err = HttpsRedirectLayer::permanent(PublicHosts::new()).unwrap_err();
        assert!(err.message().contains("public host"));
        for bad in ["healthz", "/a?b", "/a#b", "/a b"] {
            assert!(
                HttpsRedirectLayer::reject_forbidden()
                    .exempt_path(bad)
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_shows_config_without_closures() {
        let layer = HttpsRedirectLayer::reject_forbidden().exempt_if(|_, _, _| true);
        let s = format!("{layer:?}");
        assert!(s.contains("Custom(<fn>)"), "{s}");
    }
}
