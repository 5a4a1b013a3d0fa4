use super::future::ResponseFuture;
use super::{errors, headers, PeerAddr};
use crate::body::PerimeterBody;
use crate::ConfigError;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{header, Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

const COMPONENT: &str = "proxy";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;
type HttpClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// A [`Service`] that forwards requests to one upstream and streams its
/// responses back. See the [module docs](super) for what it does to headers
/// and how it answers upstream faults.
///
/// Cloning is cheap: clones share one connection pool.
#[derive(Clone)]
pub struct ReverseProxy {
    inner: Arc<Inner>,
}

struct Inner {
    client: HttpClient,
    scheme: Scheme,
    authority: Authority,
    /// Path prefix of the upstream base URL, without a trailing `/`.
    prefix: String,
    proto: &'static str,
    timeout: Option<Duration>,
    max_body: Option<u64>,
}

impl fmt::Debug for ReverseProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReverseProxy")
            .field(
                "upstream",
                &format_args!(
                    "{}://{}{}",
                    self.inner.scheme, self.inner.authority, self.inner.prefix
                ),
            )
            .field("forwarded_proto", &self.inner.proto)
            .field("timeout", &self.inner.timeout)
            .field("max_request_body", &self.inner.max_body)
            .finish()
    }
}

impl ReverseProxy {
    /// A builder; [`ReverseProxyBuilder::upstream`] is required.
    pub fn builder() -> ReverseProxyBuilder {
        ReverseProxyBuilder::default()
    }
}

/// Builder for [`ReverseProxy`].
#[must_use]
#[derive(Default)]
pub struct ReverseProxyBuilder {
    upstream: Option<(Scheme, Authority, String)>,
    proto: Option<&'static str>,
    timeout: Option<Duration>,
    max_body: Option<u64>,
    tls: Option<rustls::ClientConfig>,
}

impl fmt::Debug for ReverseProxyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReverseProxyBuilder")
            .field("upstream", &self.upstream.as_ref().map(|u| &u.1))
            .field("forwarded_proto", &self.proto)
            .field("timeout", &self.timeout)
            .field("max_request_body", &self.max_body)
            .field("tls", &self.tls.as_ref().map(|_| "<custom ClientConfig>"))
            .finish()
    }
}

impl ReverseProxyBuilder {
    /// The upstream base URL: `http://` or `https://`, a host, an optional
    /// port and an optional path prefix that request paths are appended to.
    ///
    /// # Errors
    ///
    /// When the URL does not parse, has another scheme, carries user
    /// information (`user:pass@`) or a query.
    pub fn upstream(mut self, url: &str) -> Result<Self, ConfigError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| ConfigError::new(COMPONENT, "upstream is not a valid URL"))?;
        let scheme = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => s.clone(),
            _ => {
                return Err(ConfigError::new(
                    COMPONENT,
                    "upstream URL must start with http:// or https://",
                ))
            }
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| ConfigError::new(COMPONENT, "upstream URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(ConfigError::new(
                COMPONENT,
                "upstream URL must not carry credentials; the gateway strips the client's",
            ));
        }
        if uri.query().is_some() {
            return Err(ConfigError::new(
                COMPONENT,
                "upstream URL must not have a query",
            ));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        self.upstream = Some((scheme, authority, prefix));
        Ok(self)
    }

    /// The scheme the clients used to reach the proxy, passed on as
    /// `X-Forwarded-Proto` and `Forwarded: proto=`. Defaults to `http`; a
    /// gateway that terminates TLS sets `https`.
    ///
    /// # Errors
    ///
    /// When `proto` is neither `http` nor `https`.
    pub fn forwarded_proto(mut self, proto: &str) -> Result<Self, ConfigError> {
        self.proto = Some(match proto {
            "http" => "http",
            "https" => "https",
            _ => {
                return Err(ConfigError::new(
                    COMPONENT,
                    "forwarded proto must be `http` or `https`",
                ))
            }
        });
        Ok(self)
    }

    /// How long to wait for the upstream's response head (connecting and
    /// sending the request included) before answering `504 Gateway Timeout`.
    /// No limit by default. It also bounds connecting.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The largest request body forwarded, in bytes. A request whose
    /// `Content-Length` is larger is answered `413` without contacting the
    /// upstream; a streamed body that grows past it is cut off and answered
    /// `413`. No limit by default.
    pub fn max_request_body(mut self, bytes: u64) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// The rustls configuration for an `https` upstream, for example one that
    /// pins the upstream's certificate. Without it the platform's root
    /// certificates are used.
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Builds the proxy.
    ///
    /// # Errors
    ///
    /// When no upstream was set, or the upstream is `https`, no
    /// [`tls_config`](Self::tls_config) was given and the platform's root
    /// certificates cannot be loaded.
    pub fn build(self) -> Result<ReverseProxy, ConfigError> {
        let (scheme, authority, prefix) = self
            .upstream
            .ok_or_else(|| ConfigError::new(COMPONENT, "an upstream URL is required"))?;

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(self.timeout);

        let builder = match self.tls {
            Some(config) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config),
            None if scheme == Scheme::HTTPS => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(provider)
                    .map_err(|_| {
                        ConfigError::new(
                            COMPONENT,
                            "no usable platform root certificates for the https upstream; \
                             pass a tls_config",
                        )
                    })?
            }
            None => {
                // Never used to make a TLS connection: the upstream is plain
                // http and every request goes to it.
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|_| ConfigError::new(COMPONENT, "rustls has no usable protocol"))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let connector = if scheme == Scheme::HTTPS {
            builder.https_only().enable_http1().wrap_connector(http)
        } else {
            builder.https_or_http().enable_http1().wrap_connector(http)
        };

        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);

        Ok(ReverseProxy {
            inner: Arc::new(Inner {
                client,
                scheme,
                authority,
                prefix,
                proto: self.proto.unwrap_or("http"),
                timeout: self.timeout,
                max_body: self.max_body,
            }),
        })
    }
}

impl Inner {
    fn upstream_uri(&self, original: &Uri) -> Option<Uri> {
        let path_and_query = original.path_and_query().map_or("/", PathAndQuery::as_str);
        let pq = if self.prefix.is_empty() {
            PathAndQuery::try_from(path_and_query).ok()?
        } else {
            PathAndQuery::try_from(format!("{}{}", self.prefix, path_and_query)).ok()?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }
}

impl<B> Service<Request<B>> for ReverseProxy
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<PerimeterBody<Incoming>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pooled client is always ready; it queues on its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = &*self.inner;
        let (mut parts, body) = req.into_parts();

        if let Some(limit) = inner.max_body {
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > limit) {
                event!(
                    warn,
                    reason = "body_too_large",
                    status = 413,
                    "request body over the limit"
                );
                let mut res = errors::json_error(StatusCode::PAYLOAD_TOO_LARGE);
                if parts.version <= http::Version::HTTP_11 {
                    errors::close_connection(&mut res);
                }
                return ResponseFuture::ready(res);
            }
        }

        let Some(uri) = inner.upstream_uri(&parts.uri) else {
            event!(
                warn,
                reason = "bad_target",
                status = 400,
                "request target cannot be forwarded"
            );
            return ResponseFuture::ready(errors::json_error(StatusCode::BAD_REQUEST));
        };

        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);

        headers::remove_hop_by_hop(&mut parts.headers);
        // The client sets `Host` from the upstream URI, as nginx's
        // `proxy_pass` does; the original host goes in `Forwarded`.
        parts.headers.remove(header::HOST);
        headers::set_forwarded(&mut parts.headers, peer, inner.proto, host.as_deref());
        parts.uri = uri;
        // The incoming request may be HTTP/2; the upstream leg is HTTP/1.1.
        parts.version = Version::HTTP_11;

        let body: ProxyBody = match inner.max_body {
            Some(limit) => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Limited::new(body, limit).boxed_unsync()
            }
            None => body.map_err(Into::into).boxed_unsync(),
        };
        let req = Request::from_parts(parts, body);
        ResponseFuture::upstream(inner.client.request(req), inner.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use tower::ServiceExt;

    async fn body_text(res: Response<PerimeterBody<Incoming>>) -> String {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// An address nothing listens on.
    async fn closed_port() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn unreachable_upstream_is_502_with_json_body() {
        let proxy = ReverseProxy::builder()
            .upstream(&closed_port().await)
            .unwrap()
            .build()
            .unwrap();
        let res = proxy
            .oneshot(
                Request::get("/api/ping")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            body_text(res).await,
            r#"{"error":"bad_gateway","status":502}"#
        );
    }

    #[tokio::test]
    async fn declared_body_over_the_limit_is_413_without_contacting_upstream() {
        // Were the upstream contacted, the answer would be 502.
        let proxy = ReverseProxy::builder()
            .upstream(&closed_port().await)
            .unwrap()
            .max_request_body(10)
            .build()
            .unwrap();
        let req = Request::post("/api/detect")
            .header(header::CONTENT_LENGTH, "11")
            .body(Full::new(Bytes::from_static(b"01234567890")))
            .unwrap();
        let res = proxy.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // The body was not read: an HTTP/1.1 client must not reuse the
        // connection.
        assert_eq!(res.headers()[header::CONNECTION], "close");
        assert_eq!(
            body_text(res).await,
            r#"{"error":"payload_too_large","status":413}"#
        );
        // HTTP/2 has no `Connection` header; the stream alone ends.
        let req = Request::post("/api/detect")
            .version(http::Version::HTTP_2)
            .header(header::CONTENT_LENGTH, "11")
            .body(Full::new(Bytes::from_static(b"01234567890")))
            .unwrap();
        let res = proxy.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!res.headers().contains_key(header::CONNECTION));
    }

    #[tokio::test]
    async fn streamed_body_over_the_limit_is_413() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = axum::Router::new().route(
            "/echo",
            axum::routing::post(|body: axum::body::Body| async move { body }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, echo).await });
        let proxy = ReverseProxy::builder()
            .upstream(&format!("http://{addr}"))
            .unwrap()
            .max_request_body(1024)
            .build()
            .unwrap();
        let chunks = (0..8).map(|_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'z'; 512])))
        });
        let req = Request::post("/echo")
            .body(StreamBody::new(futures_util::stream::iter(chunks)))
            .unwrap();
        let res = proxy.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        server.abort();
    }

    #[test]
    fn upstream_with_credentials_is_rejected() {
        let err = ReverseProxy::builder()
            .upstream("http://user:pw@127.0.0.1:1")
            .unwrap_err();
        assert!(err.message().contains("credentials"));
        assert!(!err.to_string().contains("pw"));
    }

    #[test]
    fn upstream_with_other_scheme_is_rejected() {
        let err = ReverseProxy::builder()
            .upstream("ftp://127.0.0.1")
            .unwrap_err();
        assert_eq!(err.component(), "proxy");
    }

    #[test]
    fn missing_upstream_is_a_build_error() {
        let err = ReverseProxy::builder().build().unwrap_err();
        assert!(err.message().contains("upstream"));
    }

    #[test]
    fn bad_forwarded_proto_is_rejected() {
        assert!(ReverseProxy::builder().forwarded_proto("ftp").is_err());
    }

    #[test]
    fn path_prefix_is_prepended() {
        let proxy = ReverseProxy::builder()
            .upstream("http://127.0.0.1:41101/face/")
            .unwrap()
            .build()
            .unwrap();
        let uri = proxy
            .inner
            .upstream_uri(&"/api/ping?x=1".parse().unwrap())
            .unwrap();
        assert_eq!(uri, "http://127.0.0.1:41101/face/api/ping?x=1");
    }

    #[test]
    fn debug_shows_upstream_without_secrets() {
        let proxy = ReverseProxy::builder()
            .upstream("http://127.0.0.1:41101")
            .unwrap()
            .build()
            .unwrap();
        let debug = format!("{proxy:?}");
        assert!(debug.contains("http://127.0.0.1:41101"));
    }
}
