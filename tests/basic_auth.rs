//! End-to-end tests of `BasicAuthLayer` through axum and hyper on real
//! loopback sockets.
#![cfg(feature = "basic-auth")]

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_perimeter::basic_auth::{
    AuthenticatedUser, BasicAuthLayer, CredentialStore, Credentials, HtpasswdReloader, Users,
};
use tower_perimeter::ServiceBuilderExt;

mod common;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn request(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    creds: Option<(&str, &str)>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(format!("http://{addr}{path}"));
    if let Some((u, p)) = creds {
        req = req.header(
            AUTHORIZATION,
            Credentials::new(u, p).to_header_value().unwrap(),
        );
    }
    let res = client
        .request(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn app(layer: BasicAuthLayer, hits: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/api/ping",
            get(move |user: AuthenticatedUser| {
                let hits = Arc::clone(&hits);
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    format!("pong {}", user.name())
                }
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(layer)
}

#[tokio::test]
async fn axum_router_admits_right_credentials_and_rejects_the_rest() {
    let users = Users::builder().user("demo", "s3cret").unwrap().build();
    let layer = BasicAuthLayer::builder()
        .realm("Face SDK")
        .unwrap()
        .users(users)
        .exempt(|p| p.uri.path() == "/health")
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = serve(app(layer, Arc::clone(&hits))).await;
    let c = client();

    let (status, _, body) = request(&c, addr, "/api/ping", Some(("demo", "s3cret"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "pong demo"));

    for creds in [None, Some(("demo", "wrong")), Some(("mallory", "s3cret"))] {
        let (status, headers, body) = request(&c, addr, "/api/ping", creds).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers[WWW_AUTHENTICATE],
            r#"Basic realm="Face SDK", charset="UTF-8""#
        );
        assert_eq!(body, "Unauthorized\n");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let (status, _, body) = request(&c, addr, "/health", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn extractor_without_the_layer_names_the_missing_layer() {
    let app = Router::new().route(
        "/",
        get(|u: AuthenticatedUser| async move { u.name().to_owned() }),
    );
    let addr = serve(app).await;
    let (status, _, body) = request(&client(), addr, "/", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("forgot to add BasicAuthLayer"), "{body}");
}

#[tokio::test]
async fn hyper_service_fn_is_protected_through_service_builder() {
    let users = Users::builder().user("svc", "pw").unwrap().build();
    let svc = ServiceBuilder::new()
        .basic_auth(BasicAuthLayer::builder().users(users).build().unwrap())
        .service_fn(|req: Request<hyper::body::Incoming>| async move {
            let user = req
                .extensions()
                .get::<AuthenticatedUser>()
                .map(|u| u.name().to_owned());
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                user.unwrap_or_default(),
            ))))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let c = client();
    let (status, _, body) = request(&c, addr, "/", Some(("svc", "pw"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "svc"));
    let (status, _, _) = request(&c, addr, "/", Some(("svc", "nope"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn stacks_with_tower_http_layers() {
    use std::time::Duration;
    use tower_http::compression::CompressionLayer;
    use tower_http::cors::CorsLayer;
    use tower_http::timeout::TimeoutLayer;
    use tower_http::trace::TraceLayer;

    let users = Users::builder().user("demo", "pw").unwrap().build();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let app = Router::new()
        .route(
            "/api/match",
            post(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async { "matched" }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(10),
                ))
                .layer(CorsLayer::permissive())
                .layer(CompressionLayer::new())
                .basic_auth(BasicAuthLayer::builder().users(users).build().unwrap()),
        );
    let addr = serve(app).await;
    let c = client();
    // CORS answers the preflight before authentication.
    let preflight = Request::options(format!("http://{addr}/api/match"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .body(Full::default())
        .unwrap();
    let res = c.request(preflight).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("access-control-allow-origin"));

    let req = Request::post(format!("http://{addr}/api/match"))
        .header(
            AUTHORIZATION,
            Credentials::new("demo", "pw").to_header_value().unwrap(),
        )
        .body(Full::default())
        .unwrap();
    let res = c.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let req = Request::post(format!("http://{addr}/api/match"))
        .body(Full::default())
        .unwrap();
    assert_eq!(
        c.request(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn reload_through_the_library_api_takes_effect_on_a_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    let line = tower_perimeter::basic_auth::htpasswd_bcrypt_line("demo", "first", 4).unwrap();
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let store = CredentialStore::new(Users::from_htpasswd_file(&path).unwrap());
    let reloader = HtpasswdReloader::new(&path, store.clone());
    let layer = BasicAuthLayer::builder().store(store).build().unwrap();
    let addr = serve(app(layer, Arc::new(AtomicUsize::new(0)))).await;
    let c = client();
    assert_eq!(
        request(&c, addr, "/api/ping", Some(("demo", "first")))
            .await
            .0,
        StatusCode::OK
    );

    let line = tower_perimeter::basic_auth::htpasswd_bcrypt_line("demo", "second", 4).unwrap();
    std::fs::write(&path, format!("{line}\n")).unwrap();
    assert_eq!(reloader.reload().unwrap(), 1);
    assert_eq!(
        request(&c, addr, "/api/ping", Some(("demo", "first")))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        request(&c, addr, "/api/ping", Some(("demo", "second")))
            .await
            .0,
        StatusCode::OK
    );
}

/// Runs Apache's `htpasswd -nb<flags> user password` and returns the line.
fn htpasswd(flags: &str, user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .arg(format!("-nb{flags}"))
        .arg(user)
        .arg(password)
        .output()
        .expect("run htpasswd");
    assert!(out.status.success(), "htpasswd -{flags} failed: {:?}", out);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
#[ignore = "needs htpasswd"]
async fn every_format_apache_htpasswd_writes_is_checked_or_refused() {
    // (flag, user, password): every hashing format the tool can write.
    let accepted = [
        ("B", "bcrypt5", "pw-b5 with spaces"),
        ("B -C 10", "bcrypt10", "pw-b10"),
        ("m", "apr1", "pw-m:colon"),
        ("s", "sha1", "pw-s"),
        ("2", "sha256", "pw-2-ünïcode"),
        ("5", "sha512", "pw-5"),
        ("2 -r 10000", "sha256r", "pw-2r"),
    ];
    let mut text = String::from("# made by Apache's htpasswd\n\n");
    for (flags, user, password) in accepted {
        let (flag, extra) = flags.split_once(' ').unwrap_or((flags, ""));
        let mut cmd = Command::new("htpasswd");
        cmd.arg(format!("-nb{flag}"));
        cmd.args(extra.split_whitespace());
        let out = cmd.arg(user).arg(password).output().expect("run htpasswd");
        assert!(out.status.success());
        text.push_str(String::from_utf8(out.stdout).unwrap().trim());
        text.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, &text).unwrap();
    let users = Users::from_htpasswd_file(&path).unwrap();
    assert_eq!(users.len(), accepted.len());

    let layer = BasicAuthLayer::builder().users(users).build().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = serve(app(layer, Arc::clone(&hits))).await;
    let c = client();
    for (_, user, password) in accepted {
        let (status, _, body) = request(&c, addr, "/api/ping", Some((user, password))).await;
        assert_eq!(status, StatusCode::OK, "{user}: right password");
        assert_eq!(body, format!("pong {user}"));
        let wrong = format!("{password}x");
        let (status, _, _) = request(&c, addr, "/api/ping", Some((user, &wrong))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}: wrong password");
    }
    assert_eq!(hits.load(Ordering::SeqCst), accepted.len());

    // Plaintext and DES-crypt entries are refused with the line number.
    for flag in ["p", "d"] {
        let line = htpasswd(flag, "weak", "pw");
        let err = Users::from_htpasswd(&format!("# x\n{line}\n")).unwrap_err();
        assert_eq!(err.line(), Some(2), "-{flag}: {err}");
        assert!(err.message().contains("htpasswd -B"), "-{flag}: {err}");
    }
}

#[cfg(feature = "tracing")]
#[tokio::test]
async fn failures_are_logged_with_a_reason_and_never_the_password() {
    use tower::{Layer, ServiceExt};
    let (captured, _guard) = common::LogCapture::install(tracing::Level::DEBUG);

    let users = Users::builder().user("demo", "s3cret-pw").unwrap().build();
    let svc = BasicAuthLayer::builder()
        .users(users)
        .build()
        .unwrap()
        .layer(tower::service_fn(|_r: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
        }));
    let wrong = Credentials::new("demo", "guess-1234")
        .to_header_value()
        .unwrap();
    let unknown = Credentials::new("nobody", "s3cret-pw")
        .to_header_value()
        .unwrap();
    for value in [
        Some(wrong.clone()),
        Some(unknown.clone()),
        None,
        Some("Basic !!".parse().unwrap()),
    ] {
        let mut req = Request::get("/");
        if let Some(v) = value {
            req = req.header(AUTHORIZATION, v);
        }
        let res = svc
            .clone()
            .oneshot(req.body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let log = captured.text();
    assert!(log.contains("wrong_password"), "{log}");
    assert!(log.contains("unknown_user"), "{log}");
    assert!(log.contains("missing"), "{log}");
    assert!(
        log.contains("malformed") || log.contains("not_base64"),
        "{log}"
    );
    assert!(
        log.contains("demo") && log.contains("nobody"),
        "user names are logged: {log}"
    );
    for secret in [
        "guess-1234",
        "s3cret-pw",
        wrong.to_str().unwrap(),
        unknown.to_str().unwrap(),
    ] {
        assert!(
            !log.contains(secret),
            "secret {secret:?} leaked into: {log}"
        );
    }
}
