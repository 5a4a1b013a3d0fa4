//! Per-request cost of `BasicAuthLayer` against the bare service and against
//! tower-http's `ValidateRequestHeaderLayer::basic`, in one run.
//!
//! `cargo bench --bench basic_auth`
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::header::AUTHORIZATION;
use http::{Request, Response};
use http_body_util::Full;
use std::convert::Infallible;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_perimeter::basic_auth::{BasicAuthLayer, CredentialStore, Credentials, Users};

type Body = Full<Bytes>;

fn bare(
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send> + Clone
{
    service_fn(|_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::default())) })
}

fn request(value: &http::HeaderValue) -> Request<Body> {
    Request::get("/api/ping")
        .header(AUTHORIZATION, value.clone())
        .body(Body::default())
        .unwrap()
}

fn users(n: usize) -> Users {
    let mut b = Users::builder();
    for i in 0..n {
        b = b
            .user(&format!("user{i}"), &format!("password-{i}"))
            .unwrap();
    }
    b.user("demo", "s3cret").unwrap().build()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let right = Credentials::new("demo", "s3cret")
        .to_header_value()
        .unwrap();
    let wrong = Credentials::new("demo", "wrong!")
        .to_header_value()
        .unwrap();

    let mut group = c.benchmark_group("basic_auth");

    group.bench_function("bare service", |b| {
        let svc = bare();
        b.to_async(&rt)
            .iter(|| svc.clone().oneshot(request(&right)));
    });

    #[allow(deprecated)]
    {
        let layer =
            tower_http::validate_request::ValidateRequestHeaderLayer::basic("demo", "s3cret");
        let svc = layer.layer(bare());
        group.bench_function("tower-http basic, success", |b| {
            b.to_async(&rt)
                .iter(|| svc.clone().oneshot(request(&right)));
        });
        group.bench_function("tower-http basic, failure", |b| {
            b.to_async(&rt)
                .iter(|| svc.clone().oneshot(request(&wrong)));
        });
    }

    for n in [1usize, 10_000] {
        // Without the cache, so that every request checks the salted digest.
        let store = CredentialStore::without_cache(users(n - 1));
        let svc = BasicAuthLayer::builder()
            .store(store)
            .build()
            .unwrap()
            .layer(bare());
        group.bench_with_input(
            BenchmarkId::new("perimeter success, users", n),
            &n,
            |b, _| {
                b.to_async(&rt)
                    .iter(|| svc.clone().oneshot(request(&right)));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("perimeter failure, users", n),
            &n,
            |b, _| {
                b.to_async(&rt)
                    .iter(|| svc.clone().oneshot(request(&wrong)));
            },
        );
    }

    // A bcrypt cost-10 user: after the first request, every success is a
    // cache hit (one HMAC and a lookup), not a bcrypt run.
    let line = tower_perimeter::basic_auth::htpasswd_bcrypt_line("demo", "s3cret", 10).unwrap();
    let store = CredentialStore::new(Users::from_htpasswd(&line).unwrap());
    let svc = BasicAuthLayer::builder()
        .store(store)
        .build()
        .unwrap()
        .layer(bare());
    rt.block_on(svc.clone().oneshot(request(&right))).unwrap();
    group.bench_function("perimeter bcrypt-10 cache hit", |b| {
        b.to_async(&rt)
            .iter(|| svc.clone().oneshot(request(&right)));
    });

    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
