//! Per-request cost of `CspLayer` and throughput of the HTML nonce
//! substitution.
//!
//! - `csp/request/*`: one request through a bare service, through
//!   `CspLayer` with the Face SDK preset, and through a naive layer that
//!   formats the same policy with `format!` per request.
//! - `csp/substitute/*`: a 100 KB page in 16 KB chunks, through the
//!   streaming substitution and through `str::replace` on the whole page.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::FutureExt as _;
use http::{header, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::task::{Context, Poll};
use tower::{Layer, Service};
use tower_perimeter::csp::{preset, CspLayer, CspNonce, DEFAULT_PLACEHOLDER};

const WEB_SERVICE: &str = "https://faceapi.example.com";

/// A handler that answers at once with a small HTML page.
#[derive(Clone)]
struct Page;

impl Service<Request<()>> for Page {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        let mut res = Response::new(Full::new(Bytes::from_static(b"<p>hello</p>")));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        ready(Ok(res))
    }
}

/// The naive peer: a nonce, then the whole policy formatted per request.
#[derive(Clone)]
struct Naive(Page);

impl Service<Request<()>> for Naive {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<()>) -> Self::Future {
        let nonce = CspNonce::generate();
        req.extensions_mut().insert(nonce);
        let Ok(mut res) = self.0.call(req).into_inner();
        let policy = format!(
            "default-src 'none'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
             style-src 'self' 'nonce-{nonce}'; worker-src 'self' blob:; img-src 'self' blob: data:; \
             media-src 'self' blob: data:; connect-src 'self' {WEB_SERVICE}; font-src 'self'; \
             manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'"
        );
        if let Ok(value) = HeaderValue::from_str(&policy) {
            res.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        ready(Ok(res))
    }
}

fn request_overhead(c: &mut Criterion) {
    let policy = preset::face_sdk_web_components(WEB_SERVICE)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("csp/request");
    let mut bare = Page;
    group.bench_function("bare", |b| {
        b.iter(|| black_box(bare.call(Request::new(())).now_or_never()))
    });
    let mut layered = CspLayer::new(policy).layer(Page);
    group.bench_function("csp_layer", |b| {
        b.iter(|| black_box(layered.call(Request::new(())).now_or_never()))
    });
    let mut naive = Naive(Page);
    group.bench_function("naive_format", |b| {
        b.iter(|| black_box(naive.call(Request::new(())).now_or_never()))
    });
    group.finish();

    // Where the time goes.
    let policy = preset::face_sdk_web_components(WEB_SERVICE)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("csp/parts");
    group.bench_function("nonce", |b| b.iter(|| black_box(CspNonce::generate())));
    let nonce = CspNonce::generate();
    group.bench_function("header_value", |b| {
        b.iter(|| black_box(policy.header_value(black_box(&nonce))))
    });
    group.bench_function("request_extension", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut().insert(nonce);
            black_box(req)
        })
    });
    group.finish();
}

/// A 100 KB page with a nonce placeholder every 10 KB.
fn page() -> String {
    let mut page = String::with_capacity(100 * 1024);
    let filler = "<div class=\"row\"><span>Face SDK liveness frame</span></div>\n";
    while page.len() < 100 * 1024 - 200 {
        if page.len() % 10_240 < filler.len() {
            page.push_str("<script nonce=\"{{csp-nonce}}\">start()</script>\n");
        }
        page.push_str(filler);
    }
    page
}

fn substitution(c: &mut Criterion) {
    let page = page();
    let chunks: Vec<Bytes> = page
        .as_bytes()
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let layer = CspLayer::builder()
        .enforce(
            preset::face_sdk_web_components(WEB_SERVICE)
                .build()
                .unwrap(),
        )
        .substitute_placeholder(DEFAULT_PLACEHOLDER)
        .unwrap()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("csp/substitute");
    group.throughput(Throughput::Bytes(page.len() as u64));

    #[derive(Clone)]
    struct Chunks(Vec<Bytes>);
    type Body = StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>,
    >;
    impl Service<Request<()>> for Chunks {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = Ready<Result<Self::Response, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            let frames: Vec<_> = self.0.iter().cloned().map(|c| Ok(Frame::data(c))).collect();
            let mut res = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            ready(Ok(res))
        }
    }

    let mut service = layer.layer(Chunks(chunks));
    group.bench_with_input(BenchmarkId::new("streaming", "100KB"), &(), |b, _| {
        b.iter(|| {
            let res = service
                .call(Request::new(()))
                .now_or_never()
                .unwrap()
                .unwrap();
            let body = res.into_body().collect().now_or_never().unwrap().unwrap();
            black_box(body.to_bytes().len())
        })
    });
    group.bench_with_input(BenchmarkId::new("str_replace", "100KB"), &(), |b, _| {
        b.iter(|| {
            let nonce = CspNonce::generate();
            black_box(page.replace(DEFAULT_PLACEHOLDER, nonce.as_str()).len())
        })
    });
    group.finish();
}

criterion_group!(benches, request_overhead, substitution);
criterion_main!(benches);
