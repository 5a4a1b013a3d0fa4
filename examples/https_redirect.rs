//! One axum router served on two listeners: plain HTTP, which redirects
//! browsers to HTTPS and rejects calls that carry credentials, and HTTPS
//! (rustls, a self-signed certificate for `localhost`), whose responses carry
//! `Strict-Transport-Security`.
//!
//! ```sh
//! cargo run --example https_redirect
//! curl -i http://localhost:8080/hello?x=1                  # 301 to https://localhost:8443/hello?x=1
//! curl -i -u user:pw -d x http://localhost:8080/api        # 403, never reaches the handler
//! curl -ik https://localhost:8443/hello                     # 200 with Strict-Transport-Security
//! ```
//!
//! Flags: `--http ADDR`, `--https ADDR`, `--public-host HOST[:PORT]`
//! (repeatable; default `localhost:<https port>`), `--trusted-proxy CIDR`
//! (repeatable), `--hsts-max-age SECONDS`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use clap::Parser;
use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::{Layer, Service, ServiceBuilder};
use tower_perimeter::https::{
    ClientInfo, HstsLayer, HttpsRedirectLayer, MarkTransportLayer, PublicHosts, Transport,
    TrustedProxies,
};
use tower_perimeter::ServiceBuilderExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(about = "Plain HTTP redirected to HTTPS, with HSTS")]
struct Args {
    /// Plain-HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    https: SocketAddr,
    /// A host redirects may point to, `HOST` or `HOST:PORT` (repeatable).
    #[arg(long = "public-host")]
    public_hosts: Vec<String>,
    /// A CIDR whose `X-Forwarded-*` headers are believed (repeatable).
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<String>,
    /// `max-age` of `Strict-Transport-Security`, in seconds.
    #[arg(long, default_value_t = 300)]
    hsts_max_age: u64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();

    let mut proxies = TrustedProxies::new().strip_untrusted(true);
    for cidr in &args.trusted_proxies {
        proxies = proxies.trust(cidr)?;
    }
    let mut hosts = PublicHosts::new();
    for host in &args.public_hosts {
        hosts = hosts.allow(host)?;
    }
    if hosts.is_empty() {
        hosts = hosts.allow(&format!("localhost:{}", args.https.port()))?;
    }
    let hosts = hosts.map_port(args.http.port(), args.https.port());

    let app = Router::new()
        .route("/hello", get(hello))
        .route("/api", post(|| async { "accepted\n" }));
    let service = ServiceBuilder::new()
        // Outermost: HSTS on every secure response, rejections included.
        .hsts(
            HstsLayer::builder()
                .max_age(Duration::from_secs(args.hsts_max_age))
                // this demo runs on localhost; a real deployment leaves it out
                .include_local_hosts()
                .trusted_proxies(proxies.clone())
                .build()?,
        )
        // Before authentication: credentials sent in clear are refused here.
        .https_redirect(
            HttpsRedirectLayer::permanent(hosts)?
                .trusted_proxies(proxies)
                .exempt_acme_challenge(),
        )
        .service(app);

    let tls = self_signed_tls()?;
    let http = TcpListener::bind(args.http).await?;
    let https = TcpListener::bind(args.https).await?;
    println!("http://{} -> https://{}", args.http, args.https);
    tokio::try_join!(
        serve(http, None, service.clone()),
        serve(https, Some(tls), service)
    )?;
    Ok(())
}

async fn hello(transport: Transport, info: ClientInfo) -> String {
    format!("hello over {transport:?} from {:?}\n", info.addr())
}

fn self_signed_tls() -> Result<TlsAcceptor, BoxError> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The accept loop: each connection's requests are marked with the
/// listener's transport and the peer address.
async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
) -> Result<(), BoxError>
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    loop {
        let (tcp, peer) = listener.accept().await?;
        let service = service.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let svc = MarkTransportLayer::tls().peer(peer).layer(service);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                        .await;
                }
                None => {
                    let svc = MarkTransportLayer::plain().peer(peer).layer(service);
                    let _ = builder
                        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc))
                        .await;
                }
            }
        });
    }
}
