use super::*;
use http::header::{AUTHORIZATION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tower::{service_fn, Layer, Service, ServiceExt};

type Res = http::Response<crate::PerimeterBody<Full<Bytes>>>;

/// An inner service that reports what it saw: the user extension, the
/// user header and whether the credential headers reached it.
fn echo(
    hits: Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<http::Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
       + Send {
    service_fn(move |req: Request<Full<Bytes>>| {
        let hits = Arc::clone(&hits);
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let user = req
                .extensions()
                .get::<AuthenticatedUser>()
                .map(|u| u.name().to_owned())
                .unwrap_or_default();
            let header = req
                .headers()
                .get("x-user")
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_default();
            let body = format!(
                "user={user};header={header};authz={};proxy_authz={}",
                req.headers().contains_key(AUTHORIZATION),
                req.headers().contains_key(PROXY_AUTHORIZATION)
            );
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
        }
    })
}

fn basic(user: &str, password: &str) -> HeaderValue {
    Credentials::new(user, password).to_header_value().unwrap()
}

fn users() -> Users {
    Users::builder()
        .user("demo", "s3cret")
        .unwrap()
        .user("ops", "hunter2")
        .unwrap()
        .build()
}

async fn send(
    layer: &BasicAuthLayer,
    hits: &Arc<AtomicUsize>,
    req: Request<Full<Bytes>>,
) -> (Res, String) {
    let res = layer
        .layer(echo(Arc::clone(hits)))
        .oneshot(req)
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        http::Response::from_parts(parts, crate::PerimeterBody::empty()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get(uri: &str) -> http::request::Builder {
    Request::get(uri)
}

fn layer() -> BasicAuthLayer {
    BasicAuthLayer::builder()
        .realm("Face SDK")
        .unwrap()
        .users(users())
        .forward_user_header("x-user")
        .unwrap()
        .build()
        .unwrap()
}

#[tokio::test]
async fn right_credentials_reach_the_inner_service_without_the_header() {
    let hits = Arc::new(AtomicUsize::new(0));
    let req = get("/")
        .header(AUTHORIZATION, basic("demo", "s3cret"))
        .body(Full::default())
        .unwrap();
    let (res, body) = send(&layer(), &hits, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(body, "user=demo;header=demo;authz=false;proxy_authz=false");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn wrong_password_gets_401_with_challenge_and_never_reaches_inner() {
    let hits = Arc::new(AtomicUsize::new(0));
    let req = get("/")
        .header(AUTHORIZATION, basic("demo", "nope"))
        .body(Full::default())
        .unwrap();
    let (res, body) = send(&layer(), &hits, req).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Basic realm="Face SDK", charset="UTF-8""#
    );
    assert_eq!(body, "Unauthorized\n");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let hits = Arc::new(AtomicUsize::new(0));
    let a = get("/")
        .header(AUTHORIZATION, basic("nobody", "s3cret"))
        .body(Full::default())
        .unwrap();
    let b = get("/")
        .header(AUTHORIZATION, basic("demo", "wrong"))
        .body(Full::default())
        .unwrap();
    let (ra, ba) = send(&layer(), &hits, a).await;
    let (rb, bb) = send(&layer(), &hits, b).await;
    assert_eq!(ra.status(), rb.status());
    assert_eq!(ba, bb);
    assert_eq!(ra.headers(), rb.headers());
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn missing_credentials_get_401() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (res, _) = send(&layer(), &hits, get("/").body(Full::default()).unwrap()).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key(WWW_AUTHENTICATE));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_credentials_get_401_never_500() {
    let hits = Arc::new(AtomicUsize::new(0));
    let long = format!("Basic {}", "A".repeat(10_000));
    for value in [
        "Basic",
        "Basic !!!",
        "Bearer abc",
        "Basic ZGVtbw==",             // "demo", no colon
        "Basic OnMzY3JldA==",         // ":s3cret", empty user
        "Basic ZGVtbzpzM2NyZXQKeA==", // password with a newline
        long.as_str(),
    ] {
        let req = get("/")
            .header(AUTHORIZATION, value)
            .body(Full::default())
            .unwrap();
        let (res, _) = send(&layer(), &hits, req).await;
        assert_eq!(res.status(), 401, "{value:.40}");
        assert!(res.headers().contains_key(WWW_AUTHENTICATE));
    }
    let req = get("/")
        .header(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        )
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&layer(), &hits, req).await.0.status(), 401);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn several_credential_headers_are_rejected() {
    let hits = Arc::new(AtomicUsize::new(0));
    let req = get("/")
        .header(AUTHORIZATION, basic("demo", "s3cret"))
        .header(AUTHORIZATION, basic("ops", "hunter2"))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&layer(), &hits, req).await.0.status(), 401);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn proxy_mode_uses_proxy_headers_and_407() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = BasicAuthLayer::builder()
        .users(users())
        .proxy_auth()
        .build()
        .unwrap();
    // Authorization is not what a forward proxy reads.
    let req = get("/")
        .header(AUTHORIZATION, basic("demo", "s3cret"))
        .body(Full::default())
        .unwrap();
    let (res, body) = send(&layer, &hits, req).await;
    assert_eq!(res.status(), 407);
    assert!(res.headers().contains_key(PROXY_AUTHENTICATE));
    assert!(!res.headers().contains_key(WWW_AUTHENTICATE));
    assert_eq!(body, "Proxy Authentication Required\n");

    let req = get("/")
        .header(PROXY_AUTHORIZATION, basic("demo", "s3cret"))
        .header(AUTHORIZATION, "Bearer for-the-origin")
        .body(Full::default())
        .unwrap();
    let (res, body) = send(&layer, &hits, req).await;
    assert_eq!(res.status(), 200);
    assert!(body.ends_with("authz=true;proxy_authz=false"), "{body}");
}

#[tokio::test]
async fn credentials_can_be_kept_for_the_inner_service() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = BasicAuthLayer::builder()
        .users(users())
        .keep_credentials(true)
        .build()
        .unwrap();
    let req = get("/")
        .header(AUTHORIZATION, basic("demo", "s3cret"))
        .body(Full::default())
        .unwrap();
    let (_, body) = send(&layer, &hits, req).await;
    assert!(body.contains("authz=true"), "{body}");
}

#[tokio::test]
async fn client_sent_user_header_is_replaced_on_success() {
    let hits = Arc::new(AtomicUsize::new(0));
    let req = get("/")
        .header(AUTHORIZATION, basic("demo", "s3cret"))
        .header("x-user", "admin")
        .header("x-user", "root")
        .body(Full::default())
        .unwrap();
    let (_, body) = send(&layer(), &hits, req).await;
    assert!(body.contains("header=demo;"), "{body}");
}

#[tokio::test]
async fn client_sent_user_header_is_removed_on_exempt_requests() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = BasicAuthLayer::builder()
        .users(users())
        .forward_user_header("x-user")
        .unwrap()
        .exempt(|parts| parts.uri.path() == "/health")
        .build()
        .unwrap();
    let req = get("/health")
        .header("x-user", "admin")
        .body(Full::default())
        .unwrap();
    let (res, body) = send(&layer, &hits, req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(body, "user=;header=;authz=false;proxy_authz=false");
    let req = get("/other")
        .header("x-user", "admin")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&layer, &hits, req).await.0.status(), 401);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cors_preflight_passes_only_when_enabled() {
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/match")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .body(Full::default())
            .unwrap()
    };
    let hits = Arc::new(AtomicUsize::new(0));
    assert_eq!(send(&layer(), &hits, preflight()).await.0.status(), 401);
    let open = BasicAuthLayer::builder()
        .users(users())
        .allow_cors_preflight(true)
        .build()
        .unwrap();
    assert_eq!(send(&open, &hits, preflight()).await.0.status(), 200);
    // A plain OPTIONS without the preflight headers still needs credentials.
    let plain = Request::builder()
        .method(Method::OPTIONS)
        .uri("/")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&open, &hits, plain).await.0.status(), 401);
}

#[tokio::test]
async fn custom_rejection_keeps_the_challenge() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = BasicAuthLayer::builder()
        .users(users())
        .on_reject(|r| {
            let mut res = http::Response::new(Bytes::from(r#"{"error":"unauthorized"}"#));
            *res.status_mut() = r.status();
            res
        })
        .build()
        .unwrap();
    let (res, body) = send(&layer, &hits, get("/").body(Full::default()).unwrap()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(body, r#"{"error":"unauthorized"}"#);
    assert!(res.headers().contains_key(WWW_AUTHENTICATE));
}

#[tokio::test]
async fn validator_decides_instead_of_users() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = BasicAuthLayer::builder()
        .validator(|c: Credentials| async move {
            match (c.user(), c.password()) {
                ("svc", "token") => Verdict::Accept(AuthenticatedUser::new("service-account")),
                ("svc", _) => Verdict::WrongPassword,
                _ => Verdict::UnknownUser,
            }
        })
        .build()
        .unwrap();
    let ok = get("/")
        .header(AUTHORIZATION, basic("svc", "token"))
        .body(Full::default())
        .unwrap();
    let (res, body) = send(&layer, &hits, ok).await;
    assert_eq!(res.status(), 200);
    assert!(body.starts_with("user=service-account;"), "{body}");
    let bad = get("/")
        .header(AUTHORIZATION, basic("svc", "x"))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&layer, &hits, bad).await.0.status(), 401);
}

fn bcrypt_store() -> CredentialStore {
    let line = htpasswd_bcrypt_line("bc", "pw-bcrypt", 4).unwrap();
    CredentialStore::new(Users::from_htpasswd(&line).unwrap())
}

#[tokio::test]
async fn slow_hash_success_is_cached_and_failures_are_not() {
    let store = bcrypt_store();
    let layer = BasicAuthLayer::builder()
        .store(store.clone())
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let bad = get("/")
        .header(AUTHORIZATION, basic("bc", "wrong"))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&layer, &hits, bad).await.0.status(), 401);
    assert_eq!(store.cache().unwrap().len(), 0, "failures are never cached");
    let unknown = get("/")
        .header(AUTHORIZATION, basic("zz", "pw-bcrypt"))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&layer, &hits, unknown).await.0.status(), 401);
    assert_eq!(store.cache().unwrap().len(), 0);
    for _ in 0..2 {
        let ok = get("/")
            .header(AUTHORIZATION, basic("bc", "pw-bcrypt"))
            .body(Full::default())
            .unwrap();
        assert_eq!(send(&layer, &hits, ok).await.0.status(), 200);
    }
    assert_eq!(store.cache().unwrap().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn replacing_users_takes_effect_and_flushes_the_cache() {
    let store = bcrypt_store();
    let layer = BasicAuthLayer::builder()
        .store(store.clone())
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let ok = || {
        get("/")
            .header(AUTHORIZATION, basic("bc", "pw-bcrypt"))
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(send(&layer, &hits, ok()).await.0.status(), 200);
    let line = htpasswd_bcrypt_line("bc", "rotated", 4).unwrap();
    store.replace(Users::from_htpasswd(&line).unwrap());
    assert_eq!(
        send(&layer, &hits, ok()).await.0.status(),
        401,
        "the cached old password must not pass"
    );
    let new = get("/")
        .header(AUTHORIZATION, basic("bc", "rotated"))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&layer, &hits, new).await.0.status(), 200);
}

#[tokio::test]
async fn concurrent_slow_checks_respect_the_bound_and_all_finish() {
    let layer = BasicAuthLayer::builder()
        .store(CredentialStore::without_cache(
            bcrypt_store().users().as_ref().clone(),
        ))
        .max_concurrent_hashes(1)
        .unwrap()
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let layer = layer.clone();
        let hits = Arc::clone(&hits);
        tasks.push(tokio::spawn(async move {
            let pw = if i % 2 == 0 { "pw-bcrypt" } else { "bad" };
            let req = get("/")
                .header(AUTHORIZATION, basic("bc", pw))
                .body(Full::default())
                .unwrap();
            send(&layer, &hits, req).await.0.status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 4);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert_eq!(layer.config_permits(), 1, "every permit is returned");
}

#[tokio::test]
async fn empty_user_set_rejects_everyone() {
    let layer = BasicAuthLayer::builder()
        .users(Users::default())
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let req = get("/")
        .header(AUTHORIZATION, basic("a", "b"))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&layer, &hits, req).await.0.status(), 401);
}

#[test]
fn failure_reason_codes_are_stable() {
    assert_eq!(FailureReason::UnknownUser.as_str(), "unknown_user");
    assert_eq!(FailureReason::WrongPassword.as_str(), "wrong_password");
    assert_eq!(FailureReason::Missing.as_str(), "missing");
    assert_eq!(FailureReason::Malformed.as_str(), "malformed");
    assert_eq!(FailureReason::Throttled.as_str(), "throttled");
}

mod throttling {
    use super::*;
    use crate::throttle::{MemoryStore, Throttle, ThrottlePolicy};
    use std::net::IpAddr;
    use std::time::Duration;

    /// A layer whose validator counts how often it runs: a throttled request
    /// must not reach it.
    fn counted(throttle: Throttle) -> (BasicAuthLayer, Arc<AtomicUsize>) {
        let checks = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&checks);
        let layer = BasicAuthLayer::builder()
            .validator(move |creds: Credentials| {
                c.fetch_add(1, Ordering::SeqCst);
                async move {
                    match (creds.user(), creds.password()) {
                        ("demo", "right") => Verdict::Accept(AuthenticatedUser::new("demo")),
                        ("demo", _) => Verdict::WrongPassword,
                        _ => Verdict::UnknownUser,
                    }
                }
            })
            .throttle(throttle.client_addr(|p| p.extensions.get::<IpAddr>().copied()))
            .build()
            .unwrap();
        (layer, checks)
    }

    fn from(ip: &str, user: &str, password: &str) -> Request<Full<Bytes>> {
        let mut req = get("/")
            .header(AUTHORIZATION, basic(user, password))
            .body(Full::default())
            .unwrap();
        req.extensions_mut().insert(ip.parse::<IpAddr>().unwrap());
        req
    }

    #[tokio::test]
    async fn an_address_is_locked_after_its_limit_without_running_a_hash() {
        let policy = ThrottlePolicy::default()
            .per_addr(3)
            .per_user(0)
            .base_delay(Duration::from_secs(30));
        let (layer, checks) = counted(Throttle::in_memory(policy).unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        for i in 0..3 {
            let res = send(&layer, &hits, from("198.51.100.7", &format!("u{i}"), "x"))
                .await
                .0;
            assert_eq!(res.status(), 401);
        }
        assert_eq!(checks.load(Ordering::SeqCst), 3);
        // Even the right password is refused while locked, and no check runs.
        let (res, body) = send(&layer, &hits, from("198.51.100.7", "demo", "right")).await;
        assert_eq!(res.status(), 429);
        assert_eq!(body, "Too Many Requests\n");
        let retry: u64 = res.headers()[http::header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&retry), "{retry}");
        assert!(!res.headers().contains_key(WWW_AUTHENTICATE));
        assert_eq!(checks.load(Ordering::SeqCst), 3);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        // Another address is not affected.
        assert_eq!(
            send(&layer, &hits, from("198.51.100.8", "demo", "right"))
                .await
                .0
                .status(),
            200
        );
    }

    #[tokio::test]
    async fn a_user_is_locked_across_addresses() {
        let policy = ThrottlePolicy::default()
            .per_addr(0)
            .per_user(2)
            .base_delay(Duration::from_secs(30));
        let (layer, _) = counted(Throttle::in_memory(policy).unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            send(&layer, &hits, from("192.0.2.1", "demo", "a"))
                .await
                .0
                .status(),
            401
        );
        assert_eq!(
            send(&layer, &hits, from("192.0.2.2", "demo", "b"))
                .await
                .0
                .status(),
            401
        );
        assert_eq!(
            send(&layer, &hits, from("192.0.2.3", "demo", "right"))
                .await
                .0
                .status(),
            429
        );
        assert_eq!(
            send(&layer, &hits, from("192.0.2.3", "other", "x"))
                .await
                .0
                .status(),
            401
        );
    }

    #[tokio::test]
    async fn malformed_credentials_count_against_the_address() {
        let policy = ThrottlePolicy::default()
            .per_addr(2)
            .base_delay(Duration::from_secs(30));
        let (layer, _) = counted(Throttle::in_memory(policy).unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let mut req = get("/")
                .header(AUTHORIZATION, "Basic !!!")
                .body(Full::default())
                .unwrap();
            req.extensions_mut()
                .insert("203.0.113.5".parse::<IpAddr>().unwrap());
            assert_eq!(send(&layer, &hits, req).await.0.status(), 401);
        }
        assert_eq!(
            send(&layer, &hits, from("203.0.113.5", "demo", "right"))
                .await
                .0
                .status(),
            429
        );
    }

    #[tokio::test]
    async fn missing_credentials_are_not_counted() {
        let policy = ThrottlePolicy::default().per_addr(1);
        let (layer, _) = counted(Throttle::in_memory(policy).unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let mut req = get("/").body(Full::default()).unwrap();
            req.extensions_mut()
                .insert("203.0.113.6".parse::<IpAddr>().unwrap());
            assert_eq!(send(&layer, &hits, req).await.0.status(), 401);
        }
        assert_eq!(
            send(&layer, &hits, from("203.0.113.6", "demo", "right"))
                .await
                .0
                .status(),
            200
        );
    }

    #[tokio::test]
    async fn a_success_clears_the_user_count() {
        let policy = ThrottlePolicy::default().per_addr(0).per_user(2);
        let (layer, _) = counted(Throttle::in_memory(policy).unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            send(&layer, &hits, from("192.0.2.1", "demo", "a"))
                .await
                .0
                .status(),
            401
        );
        assert_eq!(
            send(&layer, &hits, from("192.0.2.1", "demo", "right"))
                .await
                .0
                .status(),
            200
        );
        assert_eq!(
            send(&layer, &hits, from("192.0.2.1", "demo", "b"))
                .await
                .0
                .status(),
            401
        );
        assert_eq!(
            send(&layer, &hits, from("192.0.2.1", "demo", "right"))
                .await
                .0
                .status(),
            200
        );
    }

    #[tokio::test]
    async fn a_flood_of_distinct_addresses_does_not_grow_the_table_past_its_bound() {
        let store = Arc::new(MemoryStore::new(500));
        let throttle = Throttle::with_store(ThrottlePolicy::default(), Arc::clone(&store)).unwrap();
        let (layer, _) = counted(throttle);
        let hits = Arc::new(AtomicUsize::new(0));
        for i in 0..20_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            let _ = send(&layer, &hits, from(&ip, &format!("user{i}"), "x")).await;
        }
        assert!(store.len() <= 550, "table holds {} records", store.len());
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_store_failure_never_leaks_into_a_500() {
        struct Down;
        impl crate::throttle::ThrottleStore for Down {
            fn get(
                &self,
                _: &[crate::throttle::ThrottleKey],
            ) -> crate::throttle::StoreFuture<Vec<crate::throttle::Record>> {
                Box::pin(async { Err(crate::throttle::StoreError("down".into())) })
            }
            fn record_failure(
                &self,
                _: &[crate::throttle::ThrottleKey],
                _: u64,
                _: Duration,
            ) -> crate::throttle::StoreFuture<()> {
                Box::pin(async { Err(crate::throttle::StoreError("down".into())) })
            }
            fn reset(&self, _: &crate::throttle::ThrottleKey) -> crate::throttle::StoreFuture<()> {
                Box::pin(async { Err(crate::throttle::StoreError("down".into())) })
            }
        }
        let hits = Arc::new(AtomicUsize::new(0));
        let open = Throttle::with_store(ThrottlePolicy::default(), Down).unwrap();
        let (layer, _) = counted(open.clone());
        assert_eq!(
            send(&layer, &hits, from("192.0.2.1", "demo", "right"))
                .await
                .0
                .status(),
            200
        );
        assert_eq!(
            send(&layer, &hits, from("192.0.2.1", "demo", "wrong"))
                .await
                .0
                .status(),
            401
        );
        let (layer, checks) = counted(open.fail_mode(crate::throttle::FailMode::Closed));
        let res = send(&layer, &hits, from("192.0.2.1", "demo", "right"))
            .await
            .0;
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "1");
        assert_eq!(checks.load(Ordering::SeqCst), 0);
    }

    fn locking_layer(throttle: Throttle) -> BasicAuthLayer {
        BasicAuthLayer::builder()
            .users(users())
            .throttle(throttle)
            .build()
            .unwrap()
    }

    fn with_peer(peer: &str, xff: Option<&str>) -> Request<Full<Bytes>> {
        let mut b = get("/").header(AUTHORIZATION, basic("demo", "wrong"));
        if let Some(xff) = xff {
            b = b.header("x-forwarded-for", xff);
        }
        let mut req = b.body(Full::default()).unwrap();
        req.extensions_mut()
            .insert(crate::PeerAddr(peer.parse().unwrap()));
        req
    }

    #[tokio::test]
    async fn the_default_client_address_is_the_peer_address() {
        let policy = ThrottlePolicy::default()
            .per_addr(1)
            .per_user(0)
            .base_delay(Duration::from_secs(30));
        let layer = locking_layer(Throttle::in_memory(policy).unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            send(&layer, &hits, with_peer("192.0.2.1:5000", None))
                .await
                .0
                .status(),
            401
        );
        assert_eq!(
            send(&layer, &hits, with_peer("192.0.2.1:5001", None))
                .await
                .0
                .status(),
            429
        );
        assert_eq!(
            send(&layer, &hits, with_peer("192.0.2.2:5000", None))
                .await
                .0
                .status(),
            401
        );
    }

    #[cfg(feature = "https")]
    #[tokio::test]
    async fn forwarded_addresses_count_only_from_trusted_proxies() {
        use crate::https::TrustedProxies;
        let policy = ThrottlePolicy::default()
            .per_addr(1)
            .per_user(0)
            .base_delay(Duration::from_secs(30));
        let proxies = TrustedProxies::new().trust("10.0.0.0/8").unwrap();
        let layer = locking_layer(
            Throttle::in_memory(policy)
                .unwrap()
                .trusted_proxies(proxies),
        );
        let hits = Arc::new(AtomicUsize::new(0));
        // Behind the trusted balancer, each client is counted on its own.
        let r = send(&layer, &hits, with_peer("10.0.0.5:1", Some("198.51.100.1")))
            .await
            .0;
        assert_eq!(r.status(), 401);
        let r = send(&layer, &hits, with_peer("10.0.0.5:2", Some("198.51.100.2")))
            .await
            .0;
        assert_eq!(r.status(), 401);
        let r = send(&layer, &hits, with_peer("10.0.0.5:3", Some("198.51.100.1")))
            .await
            .0;
        assert_eq!(r.status(), 429);
        // An untrusted peer cannot escape its own count by forging the header.
        let r = send(
            &layer,
            &hits,
            with_peer("203.0.113.9:1", Some("198.51.100.50")),
        )
        .await
        .0;
        assert_eq!(r.status(), 401);
        let r = send(
            &layer,
            &hits,
            with_peer("203.0.113.9:2", Some("198.51.100.51")),
        )
        .await
        .0;
        assert_eq!(r.status(), 429);
    }
}
