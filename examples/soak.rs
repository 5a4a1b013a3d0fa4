//! Soak-and-fault run against the gateway example on loopback.
//!
//! ```sh
//! cargo build --release --example gateway
//! cargo run --release --example soak                  # 300,000 requests, 256 tasks
//! cargo run --release --example soak -- --help        # every option
//! ```
//!
//! It starts an upstream stand-in of its own on a free 127.0.0.1 port, spawns
//! the release gateway binary in front of it (its own self-signed
//! certificate, a bcrypt htpasswd file written here, a temporary output
//! directory), and drives a bounded number of HTTPS requests at high
//! concurrency over HTTP/1.1 and HTTP/2: right, wrong, unknown, missing,
//! malformed and oversized credentials; small, large and too-large bodies
//! (declared and chunked); bodies trickled slowly; connections that send half
//! a request head and wait; TCP connections that never start TLS. At a third
//! of the run it stops the upstream (every connection to it dropped), at two
//! thirds it starts it again on the same port.
//!
//! All clients come from 127.0.0.1, so the main phase runs the gateway with
//! `--no-throttle` (with throttling on, the wrong passwords of the mix would
//! lock the one client address out within seconds and turn the rest of the
//! run into `429`s). A short second phase then starts a gateway with
//! throttling on and checks that failed logins turn into `429` with
//! `Retry-After`.
//!
//! Pass criteria, each checked and printed; the exit code is 1 if any fails:
//!
//! - the gateway is alive at the end and its stderr has no `panicked`;
//! - no request hangs: each gets an answer or a connection error within
//!   `--client-timeout`;
//! - every status is one the perimeter gives on purpose (2xx, 400, 401, 407,
//!   413, 429, 502, 504), and each kind of request gets only the answers
//!   that fit it (a wrong password never a 2xx, a right one never a 401);
//! - after the upstream's restart, the first 2xx through the gateway comes
//!   within 1 s;
//! - the gateway's resident memory (`VmRSS`, sampled every 250 ms after the
//!   warm-up) grows less than 10% between the mean of the first and the last
//!   quarter of the samples.
//!
//! Every process it starts is killed by its handle on every exit path.

use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tower_perimeter::basic_auth::htpasswd_bcrypt_line;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ClientBody = UnsyncBoxBody<Bytes, BoxError>;
type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, ClientBody>;

/// Soak-and-fault run of the gateway example on loopback.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Cli {
    /// Requests in the main phase (slow clients come on top).
    #[arg(long, default_value_t = 300_000)]
    requests: u64,

    /// Concurrent client tasks.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,

    /// Hard cap on the main phase, in seconds: no request starts after it.
    #[arg(long, default_value_t = 600)]
    max_secs: u64,

    /// Requests before the memory sampling starts [default: a tenth of
    /// --requests]: connection buffers, the pools and the allocator's
    /// arenas grow for the first 30,000 or so requests at 256 tasks, then
    /// stay level.
    #[arg(long)]
    warmup: Option<u64>,

    /// Seconds a request may take before it counts as hung.
    #[arg(long, default_value_t = 15)]
    client_timeout: u64,

    /// The gateway binary.
    #[arg(long, value_name = "PATH",
          default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/examples/gateway"))]
    gateway: PathBuf,

    /// `--max-body` given to the gateway, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body: usize,

    /// `--workers` given to the gateway [default: its own, one per core].
    #[arg(long)]
    workers: Option<u16>,

    /// `RUST_LOG` of the gateway (its per-request `info` lines would make
    /// the run measure the terminal).
    #[arg(long, default_value = "warn")]
    gateway_log: String,

    /// Tasks that send bodies in 1 KiB pieces 50 ms apart, over and over.
    #[arg(long, default_value_t = 8)]
    tricklers: usize,

    /// Connections that send half a request head and then wait.
    #[arg(long, default_value_t = 16)]
    half_heads: usize,

    /// Skip the short throttled phase.
    #[arg(long)]
    no_throttle_phase: bool,

    /// Fail the run on any `431`. By default `431` counts as a fitting
    /// answer to oversized credentials only: HTTP/2 (hyper's default
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`, 16 KiB) refuses a header list over the
    /// limit with `431 Request Header Fields Too Large` (RFC 6585) before any
    /// middleware runs, while HTTP/1.1 lets the same header through to the
    /// perimeter (`401`). A `431` to any other kind of request always fails.
    #[arg(long)]
    strict_431: bool,
}

// ---------------------------------------------------------------------------
// Request kinds
// ---------------------------------------------------------------------------

/// What a client sends, and which answers fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// GET /api/ping, right credentials.
    Ping,
    /// POST /api/echo, 4 KiB, right credentials.
    Echo,
    /// POST /api/echo, 512 KiB, right credentials.
    LargeBody,
    /// POST /api/detect, 1.5 x max-body with Content-Length.
    OverLimitDeclared,
    /// POST /api/detect, 1.5 x max-body chunked.
    OverLimitChunked,
    /// POST /api/echo, 32 KiB in 1 KiB pieces 50 ms apart.
    Trickle,
    /// A known user, a wrong password.
    WrongPassword,
    /// A user not in the file.
    UnknownUser,
    /// No Authorization header.
    NoCredentials,
    /// Not Basic, not base64, no colon, not UTF-8, ...
    Malformed,
    /// Authorization headers of 8 KiB to 48 KiB.
    Oversized,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Ping,
        Kind::Echo,
        Kind::LargeBody,
        Kind::OverLimitDeclared,
        Kind::OverLimitChunked,
        Kind::Trickle,
        Kind::WrongPassword,
        Kind::UnknownUser,
        Kind::NoCredentials,
        Kind::Malformed,
        Kind::Oversized,
    ];

    /// The mix, per 1000 requests of the main loop.
    fn for_index(i: u64) -> Kind {
        match i % 1000 {
            0..=599 => Kind::Ping,
            600..=749 => Kind::Echo,
            750..=759 => Kind::LargeBody,
            760..=769 => Kind::OverLimitDeclared,
            770..=779 => Kind::OverLimitChunked,
            // bcrypt runs for each of these: 3% of the load.
            780..=799 => Kind::WrongPassword,
            800..=809 => Kind::UnknownUser,
            810..=869 => Kind::NoCredentials,
            870..=969 => Kind::Malformed,
            _ => Kind::Oversized,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Ping => "ping (right credentials)",
            Kind::Echo => "echo 4 KiB",
            Kind::LargeBody => "echo 512 KiB",
            Kind::OverLimitDeclared => "over max-body, Content-Length",
            Kind::OverLimitChunked => "over max-body, chunked",
            Kind::Trickle => "trickled body (slow client)",
            Kind::WrongPassword => "wrong password",
            Kind::UnknownUser => "unknown user",
            Kind::NoCredentials => "no credentials",
            Kind::Malformed => "malformed credentials",
            Kind::Oversized => "oversized credentials",
        }
    }

    /// Whether `status` is an answer this kind of request may get.
    fn fits(self, status: u16, accept_431: bool) -> bool {
        if self == Kind::Oversized && accept_431 && status == 431 {
            return true;
        }
        let upstream_down = status == 502 || status == 504;
        match self {
            Kind::Ping | Kind::Echo | Kind::LargeBody | Kind::Trickle => {
                status == 200 || upstream_down
            }
            // Declared too large: refused before the upstream is asked.
            Kind::OverLimitDeclared => status == 413,
            // Chunked: cut off at the limit (413), unless the upstream was
            // not there to send it to.
            Kind::OverLimitChunked => status == 413 || upstream_down,
            Kind::WrongPassword | Kind::UnknownUser | Kind::NoCredentials => status == 401,
            Kind::Malformed | Kind::Oversized => status == 401 || status == 400,
        }
    }
}

/// The codes the perimeter answers on purpose.
fn deliberate(status: u16) -> bool {
    (200..300).contains(&status) || matches!(status, 400 | 401 | 407 | 413 | 429 | 502 | 504)
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16),
    /// An answer whose echoed body was not what was sent.
    BadEcho(u16),
    /// The connection failed (refused, reset, closed early).
    ConnectionError,
    /// No answer within the client timeout.
    Hung,
}

#[derive(Debug, Default)]
struct Tally {
    counts: BTreeMap<(Kind, Outcome), u64>,
    /// One example message per connection-error kind.
    errors: BTreeMap<Kind, String>,
    /// Connection errors by kind and protocol (`true`: HTTP/2).
    errors_by_protocol: BTreeMap<(Kind, bool), u64>,
}

impl Tally {
    fn add(&mut self, kind: Kind, outcome: Outcome) {
        *self.counts.entry((kind, outcome)).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        for (key, n) in other.counts {
            *self.counts.entry(key).or_default() += n;
        }
        for (kind, message) in other.errors {
            self.errors.entry(kind).or_insert(message);
        }
        for (key, n) in other.errors_by_protocol {
            *self.errors_by_protocol.entry(key).or_default() += n;
        }
    }

    fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

// ---------------------------------------------------------------------------
// The upstream stand-in: stoppable, restartable on the same port
// ---------------------------------------------------------------------------

/// The upstream's accept loop; aborting it drops every connection it serves.
struct Upstream {
    addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Upstream {
    async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        // The port's old connections sit in TIME_WAIT after a stop.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(upstream_accept(listener));
        Ok(Self {
            addr,
            task: Some(task),
        })
    }

    /// Stops listening and drops every open connection.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

async fn upstream_accept(listener: TcpListener) {
    // The connections live in this set: when the task is aborted, the set
    // is dropped and every connection task with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                connections.spawn(async move {
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(upstream_handle))
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

type UpstreamBody = UnsyncBoxBody<Bytes, hyper::Error>;

fn upstream_full(data: &'static str) -> UpstreamBody {
    Full::new(Bytes::from_static(data.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `GET /api/ping`: a small JSON; `POST /api/echo`: the body streamed back;
/// `POST /api/detect`: the whole body read, then its size (as the real
/// service reads a whole JSON document before it answers).
async fn upstream_handle(req: Request<Incoming>) -> Result<Response<UpstreamBody>, Infallible> {
    let json = HeaderValue::from_static("application/json");
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/api/ping") => {
            let mut res = Response::new(upstream_full(r#"{"code":0,"version":"soak"}"#));
            res.headers_mut().insert(CONTENT_TYPE, json);
            res
        }
        (&Method::POST, "/api/echo") => Response::new(req.into_body().boxed_unsync()),
        (&Method::POST, "/api/detect") => match req.into_body().collect().await {
            Ok(body) => {
                let text = format!(r#"{{"code":0,"bytes":{}}}"#, body.to_bytes().len());
                let mut res = Response::new(
                    Full::new(Bytes::from(text))
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                );
                res.headers_mut().insert(CONTENT_TYPE, json);
                res
            }
            Err(_) => {
                let mut res = Response::new(upstream_full("body cut off"));
                *res.status_mut() = StatusCode::BAD_REQUEST;
                res
            }
        },
        _ => {
            let mut res = Response::new(upstream_full("not found"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
    };
    Ok(response)
}

// ---------------------------------------------------------------------------
// The gateway child process
// ---------------------------------------------------------------------------

/// The gateway process; killed (by its handle, so by its PID) when dropped.
struct GatewayProcess {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    stderr: Arc<Mutex<StderrLog>>,
}

#[derive(Debug, Default)]
struct StderrLog {
    lines: u64,
    panics: u64,
    first_panic: Option<String>,
    last: Vec<String>,
}

impl GatewayProcess {
    async fn spawn(binary: &Path, args: &[String], log: &str) -> Result<Self, BoxError> {
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id().ok_or("the gateway exited at once")?;
        let stderr = Arc::new(Mutex::new(StderrLog::default()));
        if let Some(pipe) = child.stderr.take() {
            let log = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut log) = log.lock() {
                        log.lines += 1;
                        if line.contains("panicked") {
                            log.panics += 1;
                            log.first_panic.get_or_insert_with(|| line.clone());
                        }
                        if log.last.len() == 5 {
                            log.last.remove(0);
                        }
                        log.last.push(line);
                    }
                }
            });
        }
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        // The banner: "Face SDK gateway on https://localhost:PORT (...)".
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("https://localhost:").nth(1) {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    return digits.parse::<u16>().ok();
                }
            }
            None
        })
        .await;
        let mut process = Self {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let Ok(Some(port)) = port else {
            let last = process.stderr_tail();
            process.kill().await;
            return Err(format!("the gateway printed no address; stderr: {last}").into());
        };
        // Keep draining stdout so that the child never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        process.addr = SocketAddr::from(([127, 0, 0, 1], port));
        Ok(process)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|log| log.last.join(" | "))
            .unwrap_or_default()
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

fn tls_config(cert_pem: &[u8], alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &cert_pem[..]) {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn https_client(cert_pem: &[u8], http2: bool) -> Result<HttpsClient, BoxError> {
    let config = tls_config(cert_pem, &[])?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*config).clone())
        .https_only();
    let connector = if http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.pool_max_idle_per_host(1024).http2_only(http2);
    Ok(client.build(connector))
}

fn full(data: Bytes) -> ClientBody {
    Full::new(data)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body without a length (sent chunked over HTTP/1.1).
fn chunked(total: usize, piece: usize) -> ClientBody {
    let pieces = total.div_ceil(piece);
    let stream = futures_util::stream::iter(
        (0..pieces).map(move |_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'c'; piece])))),
    );
    StreamBody::new(stream).boxed_unsync()
}

/// A body of `pieces` KiB sent one KiB every 50 ms.
fn trickled(pieces: usize) -> ClientBody {
    let stream = futures_util::stream::unfold(0usize, move |n| async move {
        if n == pieces {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((
            Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b't'; 1024]))),
            n + 1,
        ))
    });
    StreamBody::new(stream).boxed_unsync()
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::try_from(format!("Basic {token}")).unwrap_or(HeaderValue::from_static("Basic"))
}

struct Credentials {
    right: HeaderValue,
    wrong: HeaderValue,
    unknown: HeaderValue,
    malformed: Vec<HeaderValue>,
    oversized: Vec<HeaderValue>,
}

impl Credentials {
    fn new(user: &str, password: &str) -> Self {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let header = |s: String| HeaderValue::try_from(s).unwrap_or(HeaderValue::from_static("x"));
        let malformed = vec![
            HeaderValue::from_static("Basic"),
            HeaderValue::from_static("Basic "),
            HeaderValue::from_static("Basic !!!not-base64!!!"),
            HeaderValue::from_static("Bearer abc.def.ghi"),
            HeaderValue::from_static("Digest username=\"soak\""),
            header(format!("Basic {}", b64(b"no-colon-here"))),
            header(format!("Basic {}", b64(b"soak:\xff\xfe"))),
            header(format!("Basic {}", b64(b"\xc3\x28:pw"))),
            header(format!("Basic {}=", b64(user.as_bytes()))),
            header(format!(
                "basic    {}",
                b64(format!("{user}:nope").as_bytes())
            )),
            HeaderValue::from_bytes(b"Basic \xff\xfe\xfd").unwrap_or(HeaderValue::from_static("x")),
            header(format!("Basic {} {}", b64(b"a:b"), b64(b"c:d"))),
        ];
        let oversized = vec![
            header(format!("Basic {}", b64(&vec![b'a'; 6 * 1024]))),
            header(format!(
                "Basic {}",
                b64(format!("{user}:{}", "p".repeat(20 * 1024)).as_bytes())
            )),
            header(format!(
                "Basic {}",
                b64(format!("{}:pw", "u".repeat(36 * 1024)).as_bytes())
            )),
        ];
        Self {
            right: basic(user, password),
            wrong: basic(user, "definitely-not-the-password"),
            unknown: basic("nobody-here", password),
            malformed,
            oversized,
        }
    }
}

/// Shared state of a run.
struct Run {
    base: String,
    creds: Credentials,
    max_body: usize,
    client_timeout: Duration,
    /// Requests answered (any outcome).
    completed: AtomicU64,
    /// When the upstream came back, and the first 2xx after that.
    restarted_at: Mutex<Option<Instant>>,
    restarted: AtomicBool,
    first_2xx_after_restart: Mutex<Option<Instant>>,
}

impl Run {
    fn saw_2xx(&self) {
        if self.restarted.load(Ordering::Acquire) {
            let now = Instant::now();
            if let Ok(mut first) = self.first_2xx_after_restart.lock() {
                first.get_or_insert(now);
            }
        }
    }

    fn request(&self, kind: Kind, i: u64) -> (Request<ClientBody>, Option<usize>) {
        let (method, path, body, echo_len) = match kind {
            Kind::Echo => {
                let data = Bytes::from(vec![b'e'; 4096]);
                (Method::POST, "/api/echo", full(data), Some(4096))
            }
            Kind::LargeBody => {
                let n = 512 * 1024;
                (
                    Method::POST,
                    "/api/echo",
                    full(Bytes::from(vec![b'L'; n])),
                    Some(n),
                )
            }
            Kind::OverLimitDeclared => {
                let n = self.max_body + self.max_body / 2;
                (
                    Method::POST,
                    "/api/detect",
                    full(Bytes::from(vec![b'O'; n])),
                    None,
                )
            }
            Kind::OverLimitChunked => {
                let n = self.max_body + self.max_body / 2;
                (Method::POST, "/api/detect", chunked(n, 64 * 1024), None)
            }
            Kind::Trickle => (Method::POST, "/api/echo", trickled(32), Some(32 * 1024)),
            _ => (Method::GET, "/api/ping", full(Bytes::new()), None),
        };
        let auth = match kind {
            Kind::WrongPassword => Some(self.creds.wrong.clone()),
            Kind::UnknownUser => Some(self.creds.unknown.clone()),
            Kind::NoCredentials => None,
            Kind::Malformed => {
                let all = &self.creds.malformed;
                Some(all[(i / 1000) as usize % all.len()].clone())
            }
            Kind::Oversized => {
                let all = &self.creds.oversized;
                Some(all[(i / 1000) as usize % all.len()].clone())
            }
            _ => Some(self.creds.right.clone()),
        };
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = format!("{}{path}", self.base)
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        if let Some(auth) = auth {
            req.headers_mut().insert(AUTHORIZATION, auth);
        }
        (req, echo_len)
    }

    async fn one(&self, client: &HttpsClient, h2: bool, kind: Kind, i: u64, tally: &mut Tally) {
        let (req, echo_len) = self.request(kind, i);
        let exchange = async {
            let res = client.request(req).await?;
            let status = res.status().as_u16();
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, body))
        };
        let outcome = match tokio::time::timeout(self.client_timeout, exchange).await {
            Err(_) => Outcome::Hung,
            Ok(Err(err)) => {
                *tally.errors_by_protocol.entry((kind, h2)).or_default() += 1;
                tally
                    .errors
                    .entry(kind)
                    .or_insert_with(|| error_chain(err.as_ref()));
                Outcome::ConnectionError
            }
            Ok(Ok((status, body))) => {
                if (200..300).contains(&status) {
                    self.saw_2xx();
                }
                match echo_len {
                    Some(n) if status == 200 && body.len() != n => Outcome::BadEcho(status),
                    _ => Outcome::Status(status),
                }
            }
        };
        tally.add(kind, outcome);
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A connection that completes TLS, sends half a request head and waits;
/// returns how long until the gateway closed it, or `None` if it was still
/// open after `wait`.
async fn half_head(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    auth: HeaderValue,
    wait: Duration,
) -> Result<Option<Duration>, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = connector.connect(name, tcp).await?;
    let mut head = b"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ".to_vec();
    head.extend_from_slice(auth.as_bytes());
    head.extend_from_slice(b"\r\nContent-Length: 10\r\n");
    tls.write_all(&head).await?;
    tls.flush().await?;
    let sent = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(wait, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    Ok(closed.ok().map(|()| sent.elapsed()))
}

/// A TCP connection that never starts TLS; returns how long until the
/// gateway closed it, or `None` if still open after `wait`.
async fn silent_tcp(addr: SocketAddr, wait: Duration) -> Result<Option<Duration>, BoxError> {
    let mut tcp = TcpStream::connect(addr).await?;
    let opened = Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(wait, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    Ok(closed.ok().map(|()| opened.elapsed()))
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

struct Check {
    name: String,
    passed: bool,
    detail: String,
}

fn check(checks: &mut Vec<Check>, name: &str, passed: bool, detail: String) {
    checks.push(Check {
        name: name.to_owned(),
        passed,
        detail,
    });
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = match tempfile::Builder::new().prefix("soak-").tempdir() {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("soak: temp dir: {err}");
            return ExitCode::from(2);
        }
    };
    // Ctrl-C ends the run; the gateway is killed as `run` unwinds.
    let result = tokio::select! {
        result = run(&cli, dir.path()) => result,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    match result {
        Ok(true) => {
            println!("\nPASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("\nFAIL");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("soak: {err}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli, dir: &Path) -> Result<bool, BoxError> {
    if !cli.gateway.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release --example gateway`",
            cli.gateway.display()
        )
        .into());
    }
    // Users: bcrypt at the lowest cost, so that the wrong passwords of the
    // mix measure the perimeter, not the hash (each one runs it).
    let password = "soak-Password-1234";
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{}\n", htpasswd_bcrypt_line("soak", password, 4)?),
    )?;
    let creds = Credentials::new("soak", password);

    let mut upstream = Upstream::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let upstream_addr = upstream.addr;
    let out_dir = dir.join("gateway");
    let mut args = vec![
        "--upstream".to_owned(),
        format!("http://{upstream_addr}"),
        "--https".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--htpasswd".to_owned(),
        htpasswd.display().to_string(),
        "--out-dir".to_owned(),
        out_dir.display().to_string(),
        "--max-body".to_owned(),
        cli.max_body.to_string(),
        "--upstream-timeout".to_owned(),
        "5".to_owned(),
    ];
    if let Some(workers) = cli.workers {
        args.extend(["--workers".to_owned(), workers.to_string()]);
    }
    let mut main_args = args.clone();
    main_args.push("--no-throttle".to_owned());
    let mut gateway = GatewayProcess::spawn(&cli.gateway, &main_args, &cli.gateway_log).await?;
    let cert_pem = std::fs::read(out_dir.join("cert.pem"))?;
    println!(
        "gateway pid {} on https://{}, upstream http://{upstream_addr}",
        gateway.pid, gateway.addr
    );
    println!(
        "main phase: {} requests, {} tasks (1 in 4 over HTTP/2), {} tricklers, {} half heads, \
         max-body {} B, client timeout {} s, cap {} s",
        cli.requests,
        cli.concurrency,
        cli.tricklers,
        cli.half_heads,
        cli.max_body,
        cli.client_timeout,
        cli.max_secs
    );

    let mut checks = Vec::new();
    let main = main_phase(cli, &mut gateway, &mut upstream, &cert_pem, creds).await;
    let alive = gateway.alive();
    gateway.kill().await;
    upstream.stop().await;
    let main = main?;
    main.report(cli, alive, &gateway, &mut checks);

    if !cli.no_throttle_phase {
        let mut upstream = Upstream::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        args[1] = format!("http://{}", upstream.addr);
        let out_dir = dir.join("gateway-throttled");
        args[7] = out_dir.display().to_string();
        let mut throttled = GatewayProcess::spawn(&cli.gateway, &args, &cli.gateway_log).await?;
        let cert_pem = std::fs::read(out_dir.join("cert.pem"))?;
        let result = throttle_phase(&throttled, &cert_pem, password).await;
        let alive = throttled.alive();
        throttled.kill().await;
        upstream.stop().await;
        let (lines, passed) = result?;
        println!("\nThrottled phase (a second gateway, throttling on, one client address):");
        for line in &lines {
            println!("  {line}");
        }
        let panics = throttled.stderr.lock().map(|l| l.panics).unwrap_or(1);
        check(
            &mut checks,
            "throttled phase: 429 with Retry-After after repeated failures",
            passed && alive && panics == 0,
            format!("alive {alive}, panics {panics}"),
        );
    }

    println!("\nChecks:");
    let mut ok = true;
    for c in &checks {
        println!(
            "  [{}] {}: {}",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.detail
        );
        ok &= c.passed;
    }
    Ok(ok)
}

struct MainResult {
    tally: Tally,
    slow: Tally,
    elapsed: Duration,
    capped: bool,
    stopped_at: Option<(u64, Duration)>,
    restarted_at: Option<(u64, Duration)>,
    recovery: Option<Duration>,
    rss: Vec<u64>,
    half_heads: Vec<Result<Option<Duration>, String>>,
    silent: Vec<Result<Option<Duration>, String>>,
}

async fn main_phase(
    cli: &Cli,
    gateway: &mut GatewayProcess,
    upstream: &mut Upstream,
    cert_pem: &[u8],
    creds: Credentials,
) -> Result<MainResult, BoxError> {
    let h1 = https_client(cert_pem, false)?;
    let h2 = https_client(cert_pem, true)?;
    let run = Arc::new(Run {
        base: format!("https://{}", gateway.addr),
        creds,
        max_body: cli.max_body,
        client_timeout: Duration::from_secs(cli.client_timeout),
        completed: AtomicU64::new(0),
        restarted_at: Mutex::new(None),
        restarted: AtomicBool::new(false),
        first_2xx_after_restart: Mutex::new(None),
    });
    let total = cli.requests;
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(cli.max_secs);

    // Half heads and silent TCP connections, opened first, each watched for
    // 60 s (or the time cap if shorter) for the gateway to close it.
    let watch = Duration::from_secs(60).min(Duration::from_secs(cli.max_secs));
    let mut half_tasks = JoinSet::new();
    let plain = tls_config(cert_pem, &[b"http/1.1"])?;
    for _ in 0..cli.half_heads {
        let (addr, config, auth) = (gateway.addr, plain.clone(), run.creds.right.clone());
        half_tasks.spawn(async move {
            half_head(addr, config, auth, watch)
                .await
                .map_err(|e| e.to_string())
        });
    }
    let mut silent_tasks = JoinSet::new();
    for _ in 0..4 {
        let addr = gateway.addr;
        silent_tasks.spawn(async move { silent_tcp(addr, watch).await.map_err(|e| e.to_string()) });
    }

    // The load.
    let mut workers = JoinSet::new();
    for task in 0..cli.concurrency {
        let http2 = task % 4 == 3;
        let client = if http2 { h2.clone() } else { h1.clone() };
        let (run, next) = (run.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() >= deadline {
                    return tally;
                }
                run.one(&client, http2, Kind::for_index(i), i, &mut tally)
                    .await;
            }
        });
    }
    let mut slow = JoinSet::new();
    for task in 0..cli.tricklers {
        let http2 = task % 2 == 1;
        let client = if http2 { h2.clone() } else { h1.clone() };
        let (run, done) = (run.clone(), done.clone());
        slow.spawn(async move {
            let mut tally = Tally::default();
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                run.one(&client, http2, Kind::Trickle, i, &mut tally).await;
                i += 1;
            }
            tally
        });
    }

    // The controller: upstream faults at a third and two thirds, memory
    // samples every 250 ms after the warm-up.
    let warmup = cli.warmup.unwrap_or(total / 10);
    let mut rss = Vec::new();
    let mut stopped_at = None;
    let mut restarted_at = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    let mut last_sample = Instant::now();
    loop {
        ticker.tick().await;
        let completed = run.completed.load(Ordering::Relaxed);
        if stopped_at.is_none() && completed >= total / 3 {
            upstream.stop().await;
            stopped_at = Some((completed, started.elapsed()));
        }
        if stopped_at.is_some() && restarted_at.is_none() && completed >= total * 2 / 3 {
            *upstream = Upstream::start(upstream.addr).await?;
            let now = Instant::now();
            if let Ok(mut at) = run.restarted_at.lock() {
                *at = Some(now);
            }
            run.restarted.store(true, Ordering::Release);
            restarted_at = Some((completed, started.elapsed()));
        }
        if completed >= warmup && last_sample.elapsed() >= Duration::from_millis(250) {
            last_sample = Instant::now();
            if let Some(kib) = gateway.rss_kib() {
                rss.push(kib);
            }
        }
        let main_over = next.load(Ordering::Relaxed) >= total || Instant::now() >= deadline;
        if main_over && completed >= total.min(next.load(Ordering::Relaxed)) {
            break;
        }
        if !gateway.alive() {
            break;
        }
    }
    let mut tally = Tally::default();
    while let Some(part) = workers.join_next().await {
        tally.merge(part?);
    }
    let elapsed = started.elapsed();
    let capped = Instant::now() >= deadline;
    done.store(true, Ordering::Relaxed);
    let mut slow_tally = Tally::default();
    while let Some(part) = slow.join_next().await {
        slow_tally.merge(part?);
    }
    let recovery = {
        let at = run.restarted_at.lock().ok().and_then(|g| *g);
        let first = run.first_2xx_after_restart.lock().ok().and_then(|g| *g);
        match (at, first) {
            (Some(at), Some(first)) => Some(first.saturating_duration_since(at)),
            _ => None,
        }
    };
    let mut half_heads = Vec::new();
    while let Some(r) = half_tasks.join_next().await {
        half_heads.push(r?);
    }
    let mut silent = Vec::new();
    while let Some(r) = silent_tasks.join_next().await {
        silent.push(r?);
    }
    Ok(MainResult {
        tally,
        slow: slow_tally,
        elapsed,
        capped,
        stopped_at,
        restarted_at,
        recovery,
        rss,
        half_heads,
        silent,
    })
}

fn mean(values: &[u64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<u64>() as f64 / values.len() as f64
}

impl MainResult {
    fn report(&self, cli: &Cli, alive: bool, gateway: &GatewayProcess, checks: &mut Vec<Check>) {
        let mut all = Tally::default();
        for part in [&self.tally, &self.slow] {
            all.merge(Tally {
                counts: part.counts.clone(),
                errors: part.errors.clone(),
                errors_by_protocol: part.errors_by_protocol.clone(),
            });
        }
        let main_total = self.tally.total();
        let secs = self.elapsed.as_secs_f64();
        println!(
            "\nMain phase: {main_total} requests in {secs:.1} s ({:.0} req/s){}, plus {} trickled",
            main_total as f64 / secs,
            if self.capped {
                " -- stopped at the time cap"
            } else {
                ""
            },
            self.slow.total()
        );
        if let Some((n, t)) = self.stopped_at {
            println!(
                "  upstream stopped after {n} requests ({:.1} s)",
                t.as_secs_f64()
            );
        }
        if let Some((n, t)) = self.restarted_at {
            println!(
                "  upstream restarted after {n} requests ({:.1} s)",
                t.as_secs_f64()
            );
        }

        // Per kind.
        println!("\n  {:<32} outcomes", "kind");
        let mut by_status: BTreeMap<Outcome, u64> = BTreeMap::new();
        let mut misfits = Vec::new();
        for kind in Kind::ALL {
            let row: Vec<String> = all
                .counts
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|((_, outcome), n)| {
                    *by_status.entry(*outcome).or_default() += n;
                    let label = match outcome {
                        Outcome::Status(s) => {
                            if !kind.fits(*s, !cli.strict_431) {
                                misfits.push(format!("{} -> {s} x{n}", kind.name()));
                            }
                            s.to_string()
                        }
                        Outcome::BadEcho(s) => {
                            misfits.push(format!("{} -> {s} with a wrong echo x{n}", kind.name()));
                            format!("{s}-bad-echo")
                        }
                        Outcome::ConnectionError => "conn-error".to_owned(),
                        Outcome::Hung => "HUNG".to_owned(),
                    };
                    format!("{label}: {n}")
                })
                .collect();
            if !row.is_empty() {
                println!("  {:<32} {}", kind.name(), row.join(", "));
            }
        }
        println!("\n  status totals (main + trickled):");
        for (outcome, n) in &by_status {
            println!("    {outcome:?}: {n}");
        }
        let by_protocol: Vec<String> = all
            .errors_by_protocol
            .iter()
            .map(|((kind, h2), n)| {
                format!(
                    "{} over {}: {n}",
                    kind.name(),
                    if *h2 { "h2" } else { "h1" }
                )
            })
            .collect();
        println!("  connection errors: {}", by_protocol.join("; "));
        for (kind, message) in &all.errors {
            println!("  first connection error, {}: {message}", kind.name());
        }

        // Slow connections.
        let summarize = |name: &str, results: &[Result<Option<Duration>, String>]| {
            let closed: Vec<f64> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().copied().flatten())
                .map(|d| d.as_secs_f64())
                .collect();
            let open = results.iter().filter(|r| matches!(r, Ok(None))).count();
            let failed = results.iter().filter(|r| r.is_err()).count();
            let max = closed.iter().cloned().fold(0.0, f64::max);
            println!(
                "  {name}: {} opened, {} closed by the gateway (latest after {max:.1} s), \
                 {open} still open when the watch ended, {failed} could not be opened",
                results.len(),
                closed.len()
            );
            open
        };
        println!();
        let half_open = summarize("half request heads", &self.half_heads);
        let silent_open = summarize("TCP without TLS", &self.silent);

        // Memory.
        let quarter = self.rss.len() / 4;
        let (first, last) = if quarter > 0 {
            (
                mean(&self.rss[..quarter]),
                mean(&self.rss[self.rss.len() - quarter..]),
            )
        } else {
            (0.0, 0.0)
        };
        let step = (self.rss.len() / 20).max(1);
        let series: Vec<String> = self
            .rss
            .iter()
            .step_by(step)
            .map(|kib| format!("{:.0}", *kib as f64 / 1024.0))
            .collect();
        println!(
            "\n  gateway VmRSS every {} ms, MiB: {}",
            step * 250,
            series.join(" ")
        );
        let growth = if first > 0.0 {
            (last - first) / first
        } else {
            f64::NAN
        };
        println!(
            "\n  gateway VmRSS: {} samples after {} warm-up requests; first quarter mean {:.1} MiB, \
             last quarter mean {:.1} MiB ({:+.1}%), max {:.1} MiB",
            self.rss.len(),
            cli.warmup.unwrap_or(cli.requests / 10),
            first / 1024.0,
            last / 1024.0,
            growth * 100.0,
            self.rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0
        );

        // Checks.
        let stderr = gateway
            .stderr
            .lock()
            .map(|l| (l.panics, l.first_panic.clone(), l.lines));
        let (panics, first_panic, lines) = stderr.unwrap_or((1, None, 0));
        check(
            checks,
            "gateway alive, no panic",
            alive && panics == 0,
            format!(
                "alive {alive}, {panics} 'panicked' in {lines} stderr lines{}",
                first_panic
                    .map(|p| format!(" (first: {p})"))
                    .unwrap_or_default()
            ),
        );
        let hung = by_status.get(&Outcome::Hung).copied().unwrap_or(0);
        check(
            checks,
            "no hung request",
            hung == 0,
            format!(
                "{hung} requests without an answer within {} s",
                cli.client_timeout
            ),
        );
        let stray: Vec<String> = by_status
            .iter()
            .filter_map(|(o, n)| match o {
                Outcome::Status(s) | Outcome::BadEcho(s)
                    if !(deliberate(*s) || (!cli.strict_431 && *s == 431)) =>
                {
                    Some(format!("{s} x{n}"))
                }
                _ => None,
            })
            .collect();
        check(
            checks,
            "every status deliberate (2xx, 400, 401, 407, 413, 429, 502, 504)",
            stray.is_empty(),
            if stray.is_empty() {
                "none other".to_owned()
            } else {
                stray.join(", ")
            },
        );
        check(
            checks,
            "each kind of request got an answer that fits it",
            misfits.is_empty(),
            if misfits.is_empty() {
                "no 2xx without the right credentials, no 401 with them, no over-limit body passed"
                    .to_owned()
            } else {
                misfits.join("; ")
            },
        );
        check(
            checks,
            "recovery: first 2xx within 1 s of the upstream's restart",
            self.recovery.is_some_and(|r| r < Duration::from_secs(1)),
            match self.recovery {
                Some(r) => format!("{:.1} ms", r.as_secs_f64() * 1000.0),
                None => "no restart or no 2xx after it".to_owned(),
            },
        );
        check(
            checks,
            "memory flat: VmRSS growth under 10% (first vs last quarter)",
            quarter > 0 && growth < 0.10,
            format!("{:+.1}% over {} samples", growth * 100.0, self.rss.len()),
        );
        // Informational: a gateway holding connections that never finish a
        // request is a slow-client exposure, reported, not failed here.
        println!(
            "\n  note: {half_open} half-head and {silent_open} silent connections were still open \
             after {} s",
            60.min(cli.max_secs)
        );
    }
}

/// Short phase with throttling on: failed logins from the one client
/// address must turn into `429` with `Retry-After`.
async fn throttle_phase(
    gateway: &GatewayProcess,
    cert_pem: &[u8],
    password: &str,
) -> Result<(Vec<String>, bool), BoxError> {
    let client = https_client(cert_pem, false)?;
    let base = format!("https://{}", gateway.addr);
    let send = |auth: HeaderValue| {
        let client = client.clone();
        let uri = format!("{base}/api/ping");
        async move {
            let req = Request::get(uri)
                .header(AUTHORIZATION, auth)
                .body(full(Bytes::new()))?;
            let res = tokio::time::timeout(Duration::from_secs(15), client.request(req)).await??;
            let retry = res.headers().contains_key(http::header::RETRY_AFTER);
            Ok::<_, BoxError>((res.status().as_u16(), retry))
        }
    };
    let mut lines = Vec::new();
    let mut passed = true;
    let ok = send(basic("soak", password)).await?;
    lines.push(format!("right password first: {}", ok.0));
    passed &= ok.0 == 200;
    let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
    let mut first_429 = None;
    let mut missing_retry = 0;
    for n in 1..=30u32 {
        let (status, retry) = send(basic("soak", &format!("wrong-{n}"))).await?;
        *counts.entry(status).or_default() += 1;
        if status == 429 {
            first_429.get_or_insert(n);
            if !retry {
                missing_retry += 1;
            }
        }
        passed &= status == 401 || status == 429;
    }
    lines.push(format!(
        "30 wrong passwords: {counts:?}, first 429 at attempt {}, {missing_retry} 429s without Retry-After",
        first_429.map_or("-".to_owned(), |n| n.to_string())
    ));
    passed &= first_429.is_some() && missing_retry == 0;
    let after = send(basic("soak", password)).await?;
    lines.push(format!(
        "right password while locked out: {} (Retry-After: {})",
        after.0, after.1
    ));
    passed &= after.0 == 200 || after.0 == 429;
    Ok((lines, passed))
}
