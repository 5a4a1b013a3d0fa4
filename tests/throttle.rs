//! Throttle counters shared through a real `redis-server` on loopback, and
//! the behaviour when Redis is unreachable.
#![cfg(feature = "redis")]

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::net::IpAddr;
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_perimeter::basic_auth::{BasicAuthLayer, Credentials, Users};
use tower_perimeter::throttle::{FailMode, RedisStore, Throttle, ThrottlePolicy};

use common::RedisServer as Redis;

mod common;

fn layer(throttle: Throttle) -> BasicAuthLayer {
    BasicAuthLayer::builder()
        .users(Users::builder().user("demo", "right").unwrap().build())
        .throttle(throttle.client_addr(|p| p.extensions.get::<IpAddr>().copied()))
        .build()
        .unwrap()
}

async fn status(layer: &BasicAuthLayer, ip: &str, user: &str, password: &str) -> StatusCode {
    let svc = layer.layer(tower::service_fn(|_r: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
    }));
    let mut req = Request::get("/")
        .header(
            AUTHORIZATION,
            Credentials::new(user, password).to_header_value().unwrap(),
        )
        .body(Full::default())
        .unwrap();
    req.extensions_mut().insert(ip.parse::<IpAddr>().unwrap());
    // A bound on the whole request: a hang is a failure, not a slow pass.
    tokio::time::timeout(Duration::from_secs(10), svc.oneshot(req))
        .await
        .expect("request hung")
        .unwrap()
        .status()
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn two_instances_share_counters_through_redis() {
    let redis = Redis::start();
    let policy = ThrottlePolicy::default()
        .per_addr(4)
        .per_user(0)
        .base_delay(Duration::from_secs(30));
    // Two gateway instances, each with its own store handle to one Redis.
    let a = layer(Throttle::with_store(policy, RedisStore::new(&redis.url()).unwrap()).unwrap());
    let b = layer(Throttle::with_store(policy, RedisStore::new(&redis.url()).unwrap()).unwrap());
    for (i, inst) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(
            status(inst, "198.51.100.1", "demo", &format!("bad{i}")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        status(&a, "198.51.100.1", "demo", "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&b, "198.51.100.1", "demo", "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&b, "198.51.100.2", "demo", "right").await,
        StatusCode::OK
    );
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn redis_going_away_fails_open_or_closed_without_hanging() {
    let mut redis = Redis::start();
    let policy = ThrottlePolicy::default().per_addr(3);
    let open = layer(Throttle::with_store(policy, RedisStore::new(&redis.url()).unwrap()).unwrap());
    let closed = layer(
        Throttle::with_store(policy, RedisStore::new(&redis.url()).unwrap())
            .unwrap()
            .fail_mode(FailMode::Closed),
    );
    assert_eq!(
        status(&open, "192.0.2.1", "demo", "right").await,
        StatusCode::OK
    );
    assert_eq!(
        status(&closed, "192.0.2.1", "demo", "right").await,
        StatusCode::OK
    );
    redis.stop();
    assert_eq!(
        status(&open, "192.0.2.1", "demo", "right").await,
        StatusCode::OK
    );
    assert_eq!(
        status(&open, "192.0.2.1", "demo", "wrong").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&closed, "192.0.2.1", "demo", "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn unreachable_redis_at_start_does_not_hang_requests() {
    // Nothing listens on this port: connection refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let open = layer(
        Throttle::with_store(ThrottlePolicy::default(), RedisStore::new(&url).unwrap()).unwrap(),
    );
    assert_eq!(
        status(&open, "192.0.2.1", "demo", "right").await,
        StatusCode::OK
    );
    let closed = layer(
        Throttle::with_store(ThrottlePolicy::default(), RedisStore::new(&url).unwrap())
            .unwrap()
            .fail_mode(FailMode::Closed),
    );
    assert_eq!(
        status(&closed, "192.0.2.1", "demo", "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn bad_redis_urls_are_config_errors_without_secrets() {
    let err = RedisStore::new("not a url with secret-password").unwrap_err();
    assert!(!err.to_string().contains("secret-password"), "{err}");
    let store = RedisStore::new("redis://:hunter2@127.0.0.1:6379/").unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
}
