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

/// HTTPS gateway with Basic authentication in front of the Face SDK Web
/// Service (HTTP/1.1 and HTTP/2).
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Cli {
    /// Address to serve HTTPS on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    https: SocketAddr,

    /// Base URL of a running Web Service (http:// or https://); without it a
    /// built-in stand-in starts on 127.0.0.1:41101.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,

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

    /// Turn off brute-force throttling (by default 10 failed logins per
    /// client address or 5 per user name in 15 minutes lock them out: 429).
    #[arg(long)]
    no_throttle: bool,

    /// Worker threads, each with its own runtime and listening socket
    /// [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,

    /// Directory for the generated certificate and demo htpasswd file
    /// [default: <temp dir>/tower-perimeter-gateway].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
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
        throttle: !cli.no_throttle,
    };
    let workers = cli.workers.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let listeners = app::reuseport_listeners(cli.https, workers)
        .map_err(|e| format!("--https {}: {e}", cli.https))?;
    let gateway = app::start_workers(listeners, tls, &options, store.clone())?;

    let signals = install_signals(HtpasswdReloader::new(&htpasswd, store))?;
    print_banner(
        &cli,
        &options,
        &cert,
        &htpasswd,
        demo_password.as_deref(),
        gateway.addr,
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
) {
    let host = if addr.ip().is_loopback() && addr.is_ipv4() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
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
    println!();
    println!("Face SDK gateway on {base} (HTTP/1.1 and HTTP/2)");
    println!("  upstream:    {}", options.upstream);
    println!("  certificate: {}", cert.display());
    println!("  htpasswd:    {}", htpasswd.display());
    if let Some(password) = demo_password {
        println!("  user:        demo");
        println!("  password:    {password}");
    }
    println!();
    println!("Try:");
    println!("  curl {cacert} {credentials} {base}/api/ping");
    println!(
        "  curl {cacert} {credentials} -H 'Content-Type: application/json' \
         -d '{{\"image\":\"aGVsbG8=\"}}' {base}/api/detect"
    );
    println!(
        "  curl {cacert} -i {base}/api/ping    # no credentials: {}",
        if cli.proxy_auth { "407" } else { "401" }
    );
    println!();
    println!("SIGHUP reloads the htpasswd file; Ctrl-C drains and stops.");
}
