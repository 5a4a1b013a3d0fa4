//! Overhead of HTTPS enforcement: a secure request through
//! `HttpsRedirect` + `Hsts` (pass-through, header added) and a plain request
//! redirected, each against the bare service and against the approach of
//! axum's tls-rustls example (`make_https`: rewrite the `Host` header's port
//! and answer with a redirect, no allow-list, no transport detection).

// criterion_group! makes a public function without docs.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures_util::FutureExt;
use http::header::{HOST, LOCATION};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder};
use tower_perimeter::https::{
    HstsLayer, HttpsRedirectLayer, PeerAddr, PublicHosts, Transport, TrustedProxies,
};
use tower_perimeter::ServiceBuilderExt;

type Body = Full<Bytes>;

fn request(transport: Transport) -> Request<()> {
    let mut req = Request::post("/api/v1/match?threshold=0.8&mode=fast")
        .header(HOST, "example.com:8080")
        .header("x-forwarded-for", "203.0.113.7")
        .body(())
        .expect("static request");
    req.extensions_mut().insert(transport);
    req.extensions_mut()
        .insert(PeerAddr("10.0.0.3:40000".parse().expect("static addr")));
    req
}

async fn bare(_req: Request<()>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"score\":0.97}",
    ))))
}

/// The redirect of axum's tls-rustls example, written out: take the `Host`
/// header as given, replace the HTTP port with the HTTPS port, keep the path.
fn make_https(host: &str, uri: Uri, http_port: u16, https_port: u16) -> Option<Uri> {
    let mut parts = uri.into_parts();
    parts.scheme = Some(Scheme::HTTPS);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some("/".parse().ok()?);
    }
    let https_host = host.replace(&http_port.to_string(), &https_port.to_string());
    parts.authority = Some(https_host.parse::<Authority>().ok()?);
    Uri::from_parts(parts).ok()
}

async fn make_https_redirect(req: Request<()>) -> Result<Response<Body>, Infallible> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut res = Response::new(Full::default());
    match make_https(host, req.uri().clone(), 8080, 8443)
        .and_then(|u| HeaderValue::try_from(u.to_string()).ok())
    {
        Some(location) => {
            *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
            res.headers_mut().insert(LOCATION, location);
        }
        None => *res.status_mut() = StatusCode::BAD_REQUEST,
    }
    Ok(res)
}

fn run<S, B>(svc: &mut S, req: Request<()>) -> Response<B>
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    // Every service here answers without waiting, so the future is ready at
    // once; no runtime is involved in the measurement.
    svc.call(req)
        .now_or_never()
        .expect("ready future")
        .expect("infallible")
}

fn benches(c: &mut Criterion) {
    let proxies = TrustedProxies::new()
        .trust("10.0.0.0/8")
        .expect("static cidr");
    let hosts = PublicHosts::new()
        .allow("example.com")
        .expect("static host")
        .map_port(8080, 8443);
    let perimeter = ServiceBuilder::new()
        .hsts(HstsLayer::new(Duration::from_secs(31_536_000)).trusted_proxies(proxies.clone()))
        .https_redirect(
            HttpsRedirectLayer::permanent(hosts)
                .expect("hosts")
                .trusted_proxies(proxies)
                .exempt_acme_challenge(),
        );

    let mut group = c.benchmark_group("https");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    let mut svc = tower::service_fn(bare);
    group.bench_function("bare service", |b| {
        b.iter_batched(
            || request(Transport::Tls),
            |r| run(&mut svc, r),
            BatchSize::SmallInput,
        )
    });

    let mut svc = perimeter.service(tower::service_fn(bare));
    let res = run(&mut svc, request(Transport::Tls));
    assert!(res.headers().contains_key("strict-transport-security"));
    group.bench_function("secure pass-through + HSTS", |b| {
        b.iter_batched(
            || request(Transport::Tls),
            |r| run(&mut svc, r),
            BatchSize::SmallInput,
        )
    });

    let res = run(&mut svc, request(Transport::Plain));
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        res.headers()[LOCATION],
        "https://example.com:8443/api/v1/match?threshold=0.8&mode=fast"
    );
    group.bench_function("plain redirect", |b| {
        b.iter_batched(
            || request(Transport::Plain),
            |r| run(&mut svc, r),
            BatchSize::SmallInput,
        )
    });

    let mut svc = tower::service_fn(make_https_redirect);
    let res = run(&mut svc, request(Transport::Plain));
    assert_eq!(
        res.headers()[LOCATION],
        "https://example.com:8443/api/v1/match?threshold=0.8&mode=fast"
    );
    group.bench_function("make_https redirect (axum example)", |b| {
        b.iter_batched(
            || request(Transport::Plain),
            |r| run(&mut svc, r),
            BatchSize::SmallInput,
        )
    });

    // The layer alone on a plain request, redirect path: what a dedicated
    // plain listener would run.
    let mut svc = HttpsRedirectLayer::permanent(
        PublicHosts::new()
            .allow("example.com")
            .expect("static host")
            .map_port(8080, 8443),
    )
    .expect("hosts")
    .layer(tower::service_fn(bare));
    group.bench_function("plain redirect, redirect layer only", |b| {
        b.iter_batched(
            || request(Transport::Plain),
            |r| run(&mut svc, r),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(https, benches);
criterion_main!(https);
