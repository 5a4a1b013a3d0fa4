//! An HTTPS gateway that checks Basic credentials in front of the Face SDK
//! Web Service.
//!
//! ```sh
//! cargo run --example gateway            # stand-in service, demo user, self-signed cert
//! cargo run --example gateway -- --help  # every option
//! ```
//!
//! Without `--upstream`, a stand-in of the Web Service starts on
//! 127.0.0.1:41101. Without `--cert`/`--key`, a self-signed certificate for
//! `localhost` and `127.0.0.1` is written to the output directory. Without
//! `--htpasswd`, a demo user with a random password is written there too, and
//! printed with ready-to-paste `curl` commands.
//!
//! Plain HTTP on `--http` (127.0.0.1:8080) redirects browsers to HTTPS on
//! an allow-listed host (`--public-host`) and refuses requests that carry
//! credentials, which therefore never reach the upstream.
//!
//! Optional features add options: `pinning` adds `--upstream-pin` (and the
//! banner shows the gateway's own pin), `redis` adds `--throttle-redis`:
//!
//! ```sh
//! cargo run --example gateway --features pinning,redis -- --help
//! ```
//!
//! SIGHUP reloads the htpasswd file; SIGINT and SIGTERM stop accepting
//! connections, let in-flight requests finish, and exit 0. A bad option or
//! file ends the program with exit code 2 and a one-line message.

mod app;

use base64::Engine as _;
use clap::Parser;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_perimeter::basic_auth::{htpasswd_bcrypt_line, CredentialStore, HtpasswdReloader, Users};

// mimalloc: a proxy allocates and frees many small buffers per request,
// which glibc's allocator does more slowly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The stand-in Web Service's address: the real service's default port.
const STANDIN_ADDR: &str = "127.0.0.1:41101";

/// Options that the build's features leave out, named under `--help`.
const AFTER_HELP: Option<&str> = match (cfg!(feature = "pinning"), cfg!(feature = "redis")) {
    (true, true) => None,
    (false, true) => Some(
        "Built without the `pinning` feature: --upstream-pin (pinning an https \
         upstream's key) needs `--features pinning`.",
    ),
    (true, false) => Some(
        "Built without the `redis` feature: --throttle-redis (throttle counters \
         shared through Redis) needs `--features redis`.",
    ),
    (false, false) => Some(
        "Built without the `pinning` and `redis` features: --upstream-pin \
         (pinning an https upstream's key) and --throttle-redis (throttle \
         counters shared through Redis) need `--features pinning,redis`.",
    ),
};

/// HTTPS gateway with Basic authentication in front of the Face SDK Web
/// Service (HTTP/1.1 and HTTP/2).
#[derive(Debug, Parser)]
#[command(name = "gateway", version, after_help = AFTER_HELP)]
struct Cli {
    /// Address to serve HTTPS on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    https: SocketAddr,

    /// Address to serve plain HTTP on: browsers are redirected to HTTPS,
    /// requests carrying credentials are refused (403).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: SocketAddr,

    /// Do not serve plain HTTP at all.
    #[arg(long, conflicts_with = "http")]
    no_http: bool,

    /// A host plain-HTTP requests may be redirected to, HOST or HOST:PORT
    /// (repeatable); a Host not on the list gets 400 [default: localhost and
    /// 127.0.0.1 on the HTTPS port].
    #[arg(long = "public-host", value_name = "HOST[:PORT]")]
    public_hosts: Vec<String>,

    /// A proxy (CIDR) whose Forwarded / X-Forwarded-* headers are believed
    /// for the redirect, HSTS and the throttle's client address
    /// (repeatable) [default: none, the gateway is the edge].
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<String>,

    /// Base URL of a running Web Service (http:// or https://); without it a
    /// built-in stand-in starts on 127.0.0.1:41101.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,

    /// Pin of the https upstream's key: sha256/BASE64, pin-sha256="BASE64"
    /// or sha256//BASE64 (repeatable). With pins, the upstream's certificate
    /// is accepted by its key alone (self-signed is fine) and any other key
    /// gets 502. Give two: the key in use and a backup key.
    #[cfg(feature = "pinning")]
    #[arg(long = "upstream-pin", value_name = "PIN", value_parser = parse_pin, requires = "upstream")]
    upstream_pins: Vec<String>,

    /// Accept a single --upstream-pin (without a backup pin, a new upstream
    /// key means reconfiguring the gateway first).
    #[cfg(feature = "pinning")]
    #[arg(long, requires = "upstream_pins")]
    allow_single_pin: bool,

    /// htpasswd file (bcrypt, SHA-crypt, argon2, {SHA}, apr1 lines); without
    /// it a demo user with a random password is created. SIGHUP reloads it.
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,

    /// Realm shown in the authentication challenge.
    #[arg(long, value_name = "TEXT", default_value = "Face SDK")]
    realm: String,

    /// PEM certificate chain; without it a self-signed one is generated.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,

    /// PEM private key for --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,

    /// Act as a forward-proxy perimeter: answer 407 and read
    /// Proxy-Authorization instead of 401 and Authorization.
    #[arg(long)]
    proxy_auth: bool,

    /// Largest request body forwarded, in bytes (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    max_body: usize,

    /// Seconds the upstream has to answer (slower: 504).
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    upstream_timeout: u64,

    /// Seconds a client has to send a whole request head before its
    /// connection is closed (slow-header clients).
    #[arg(long, value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,

    /// Turn off brute-force throttling (by default 10 failed logins per
    /// client address or 5 per user name in 15 minutes lock them out: 429).
    #[arg(long)]
    no_throttle: bool,

    /// Keep throttle counters in this Redis (redis://HOST:PORT/DB), shared
    /// by every gateway instance that names it.
    #[cfg(feature = "redis")]
    #[arg(long, value_name = "URL", conflicts_with = "no_throttle")]
    throttle_redis: Option<String>,

    /// If the Redis of --throttle-redis cannot be reached, answer 429 rather
    /// than check the password unthrottled.
    #[cfg(feature = "redis")]
    #[arg(long, requires = "throttle_redis")]
    throttle_fail_closed: bool,

    /// Worker threads, each with its own runtime and listening socket
    /// [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,

    /// Directory for the generated certificate and demo htpasswd file
    /// [default: <temp dir>/tower-perimeter-gateway].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Checks an `--upstream-pin` value as the command line is parsed.
#[cfg(feature = "pinning")]
fn parse_pin(value: &str) -> Result<String, String> {
    value
        .parse::<tower_perimeter::pinning::Pin>()
        .map(|pin| pin.to_okhttp())
        .map_err(|e| e.to_string())
}

/// A start-up failure: printed on one line, exit code 2.
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(err: E) -> Self {
        Self(err.to_string())
    }
}

/// The main thread runs signals and the stand-in; the gateway itself runs
/// on worker threads (see `app::start_workers`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            // clap's own message is several lines; keep its first.
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("bad arguments");
            eprintln!("gateway: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(message)) => {
            eprintln!("gateway: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Fatal> {
    let out_dir = cli
        .out_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("tower-perimeter-gateway"));

    // Certificate.
    let (cert, key) = match (&cli.cert, &cli.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            let files = app::self_signed(&out_dir)?;
            (files.cert, files.key)
        }
    };
    let tls = app::load_tls(&cert, &key)?;

    // Users.
    let (htpasswd, demo_password) = match &cli.htpasswd {
        Some(path) => (path.clone(), None),
        None => {
            let password = app::random_password();
            let line = htpasswd_bcrypt_line("demo", &password, 10)?;
            let path = out_dir.join("htpasswd");
            std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
            app::write_file(&path, format!("{line}\n").as_bytes(), 0o600)?;
            (path, Some(password))
        }
    };
    let users = Users::from_htpasswd_file(&htpasswd)
        .map_err(|e| format!("--htpasswd {}: {e}", htpasswd.display()))?;
    let store = CredentialStore::new(users);

    // Upstream: a real service, or the stand-in.
    let (upstream, standin) = match &cli.upstream {
        Some(url) => (url.clone(), None),
        None => {
            let listener = TcpListener::bind(STANDIN_ADDR).await.map_err(|e| {
                format!(
                    "cannot start the stand-in Web Service on {STANDIN_ADDR}: {e} \
                     (pass --upstream URL to use a running one)"
                )
            })?;
            let standin = app::start_standin(listener)?;
            (format!("http://{STANDIN_ADDR}"), Some(standin))
        }
    };

    let options = app::GatewayOptions {
        upstream,
        realm: cli.realm.clone(),
        proxy_auth: cli.proxy_auth,
        max_body: cli.max_body,
        upstream_timeout: Duration::from_secs(cli.upstream_timeout),
        header_timeout: Duration::from_secs(cli.header_timeout),
        throttle: !cli.no_throttle,
        public_hosts: cli.public_hosts.clone(),
        trusted_proxies: cli.trusted_proxies.clone(),
        ..app::GatewayOptions::default()
    };
    #[cfg(feature = "pinning")]
    let options = app::GatewayOptions {
        upstream_pins: cli.upstream_pins.clone(),
        allow_single_pin: cli.allow_single_pin,
        ..options
    };
    #[cfg(feature = "redis")]
    let options = app::GatewayOptions {
        throttle_redis: cli.throttle_redis.clone(),
        throttle_fail_closed: cli.throttle_fail_closed,
        ..options
    };
    // Bad pins or CIDRs end the program before anything listens (a bad
    // --public-host as the workers start: it needs the bound ports).
    app::upstream_tls(&options)?;
    let _ = app::trusted_proxies(&options)?;
    let workers = cli.workers.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let https = app::reuseport_listeners(cli.https, workers)
        .map_err(|e| format!("--https {}: {e}", cli.https))?;
    let listeners = if cli.no_http {
        https.into_iter().map(|l| (l, None)).collect()
    } else {
        let http = app::reuseport_listeners(cli.http, workers)
            .map_err(|e| format!("--http {}: {e}", cli.http))?;
        https.into_iter().zip(http.into_iter().map(Some)).collect()
    };
    let gateway = app::start_workers(listeners, tls, &options, store.clone())?;

    let signals = install_signals(HtpasswdReloader::new(&htpasswd, store))?;
    print_banner(
        &cli,
        &options,
        &cert,
        &htpasswd,
        demo_password.as_deref(),
        gateway.addr,
        gateway.http_addr,
    );

    signals.await;
    tracing::info!("shutting down: draining in-flight requests");
    gateway.shutdown().await;
    if let Some(standin) = standin {
        standin.stop();
    }
    Ok(())
}

/// Installs the signal handlers at once (so that a signal sent as soon as
/// the banner is out is not missed) and returns the future that waits:
/// SIGHUP reloads the htpasswd file; SIGINT or SIGTERM ends the wait.
#[cfg(unix)]
fn install_signals(
    reloader: HtpasswdReloader,
) -> Result<impl std::future::Future<Output = ()>, Fatal> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => match reloader.reload() {
                    Ok(count) => tracing::info!(users = count, "htpasswd reloaded"),
                    // The users loaded before stay in force.
                    Err(err) => tracing::error!(%err, "htpasswd reload failed; keeping the previous users"),
                },
                _ = int.recv() => return,
                _ = term.recv() => return,
            }
        }
    })
}

#[cfg(not(unix))]
fn install_signals(
    _reloader: HtpasswdReloader,
) -> Result<impl std::future::Future<Output = ()>, Fatal> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn print_banner(
    cli: &Cli,
    options: &app::GatewayOptions,
    cert: &Path,
    htpasswd: &Path,
    demo_password: Option<&str>,
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
) {
    let local = |addr: SocketAddr| {
        if addr.ip().is_loopback() && addr.is_ipv4() {
            format!("localhost:{}", addr.port())
        } else {
            addr.to_string()
        }
    };
    let host = local(addr);
    // Written at once, and a closed stdout is no reason to stop serving.
    let mut out = String::new();
    macro_rules! say {
        ($($arg:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(out, $($arg)*);
        }};
    }
    let base = format!("https://{host}");
    let (user, password) = match demo_password {
        Some(p) => ("demo", p),
        None => ("USER", "PASSWORD"),
    };
    let credentials = if cli.proxy_auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("-H 'Proxy-Authorization: Basic {token}'")
    } else {
        format!("-u '{user}:{password}'")
    };
    let cacert = format!("--cacert '{}'", cert.display());
    say!();
    say!("Face SDK gateway on {base} (HTTP/1.1 and HTTP/2)");
    say!("  upstream:    {}", options.upstream);
    if let Some(http) = http_addr {
        say!("  plain HTTP:  http://{} (redirects to HTTPS)", local(http));
    }
    say!("  certificate: {}", cert.display());
    #[cfg(feature = "pinning")]
    match app::certificate_pin(cert) {
        Ok(pin) => say!("  pin:         {pin}"),
        Err(err) => say!("  pin:         unavailable ({err})"),
    }
    say!("  htpasswd:    {}", htpasswd.display());
    if let Some(password) = demo_password {
        say!("  user:        demo");
        say!("  password:    {password}");
    }
    say!();
    say!("Try:");
    say!("  curl {cacert} {credentials} {base}/api/ping");
    say!(
        "  curl {cacert} {credentials} -H 'Content-Type: application/json' \
         -d '{{\"image\":\"aGVsbG8=\"}}' {base}/api/detect"
    );
    say!(
        "  curl {cacert} -i {base}/api/ping    # no credentials: {}",
        if cli.proxy_auth { "407" } else { "401" }
    );
    if let Some(http) = http_addr {
        say!(
            "  curl -i http://{}/api/ping    # plain HTTP: 301 to HTTPS",
            local(http)
        );
    }
    say!();
    say!("SIGHUP reloads the htpasswd file; Ctrl-C drains and stops.");
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}
