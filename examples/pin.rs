//! Prints the public-key pins of a certificate chain, ready to paste into a
//! pin set, an OkHttp `CertificatePinner`, an HPKP header or curl.
//!
//! ```text
//! cargo run --example pin --features pinning -- chain.pem [more.pem ...]
//! cargo run --example pin --features pinning -- --connect faces.example.com:443
//! cargo run --example pin --features pinning -- --format curl --connect 10.0.0.7:8443 --server-name faces.dmz
//! ```
//!
//! With `--connect` the chain is the one the server sends, recorded during a
//! handshake that checks the server's signature but trusts nothing else:
//! compare the output with a copy obtained out of band before pinning it.

use std::fmt::Write as _;
use std::io::{self, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use tower_perimeter::pinning::Pin;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// Print the SHA-256 public-key pins of every certificate in a chain.
#[derive(Parser, Debug)]
#[command(name = "pin")]
struct Args {
    /// PEM files holding one or more certificates.
    files: Vec<PathBuf>,

    /// Connect to HOST:PORT and print the chain the server sends.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,

    /// Server name to send (SNI) with --connect; defaults to HOST.
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,

    /// How to spell the pins.
    #[arg(long, value_enum, default_value_t = Format::Okhttp)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// sha256/BASE64 (OkHttp, this crate)
    Okhttp,
    /// pin-sha256="BASE64" (HPKP)
    Hpkp,
    /// sha256//BASE64 (curl --pinnedpubkey)
    Curl,
}

fn main() {
    let args = Args::parse();
    if args.files.is_empty() && args.connect.is_none() {
        eprintln!("pin: give PEM files or --connect HOST:PORT (see --help)");
        std::process::exit(2);
    }
    let mut failed = false;
    for path in &args.files {
        match read_pem(path) {
            Ok(chain) => print!(
                "{}",
                describe(&path.display().to_string(), &chain, args.format)
            ),
            Err(err) => {
                eprintln!("pin: {}: {err}", path.display());
                failed = true;
            }
        }
    }
    if let Some(target) = &args.connect {
        match fetch_chain(target, args.server_name.as_deref()) {
            Ok(chain) => print!(
                "{}",
                describe(
                    &format!("{target} (as sent by the server)"),
                    &chain,
                    args.format
                )
            ),
            Err(err) => {
                eprintln!("pin: {target}: {err}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

fn read_pem(path: &PathBuf) -> io::Result<Vec<CertificateDer<'static>>> {
    let file = std::fs::File::open(path)?;
    let chain = rustls_pemfile::certs(&mut BufReader::new(file)).collect::<Result<Vec<_>, _>>()?;
    if chain.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no CERTIFICATE block found",
        ));
    }
    Ok(chain)
}

fn describe(source: &str, chain: &[CertificateDer<'_>], format: Format) -> String {
    let mut out = format!("{source}\n");
    for (i, der) in chain.iter().enumerate() {
        let (subject, issuer) = match X509Certificate::from_der(der.as_ref()) {
            Ok((_, cert)) => (cert.subject().to_string(), cert.issuer().to_string()),
            Err(_) => ("<unparsable>".into(), "<unparsable>".into()),
        };
        let pin = match Pin::from_certificate_der(der.as_ref()) {
            Ok(pin) => match format {
                Format::Okhttp => pin.to_okhttp(),
                Format::Hpkp => pin.to_hpkp(),
                Format::Curl => pin.to_curl(),
            },
            Err(err) => format!("<no pin: {err}>"),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "  [{i}] subject: {subject}");
        let _ = writeln!(out, "      issuer:  {issuer}");
        let _ = writeln!(out, "      pin:     {pin}");
    }
    out
}

/// Handshakes with `target` and returns the certificates the server sent.
fn fetch_chain(
    target: &str,
    server_name: Option<&str>,
) -> io::Result<Vec<CertificateDer<'static>>> {
    let host = match target.rsplit_once(':') {
        Some((host, _port)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => return Err(io::Error::other("expected HOST:PORT")),
    };
    let name = ServerName::try_from(server_name.unwrap_or(host).to_owned())
        .map_err(|err| io::Error::other(format!("bad server name: {err}")))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        chain: Mutex::default(),
        provider: Arc::clone(&provider),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();

    let addr = target
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("no address for host"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);

    let chain = recorder
        .chain
        .lock()
        .map_err(|_| io::Error::other("recorder poisoned"))?
        .clone();
    if chain.is_empty() {
        return Err(io::Error::other("the server sent no certificate"));
    }
    Ok(chain)
}

/// Records the chain and accepts it; the handshake signature is still
/// checked, so the server proved it holds the leaf's key. Never use this
/// verifier to carry data: it trusts any certificate.
#[derive(Debug)]
struct Recorder {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = self
            .chain
            .lock()
            .map_err(|_| rustls::Error::General("recorder poisoned".into()))?;
        chain.clear();
        chain.push(end_entity.clone().into_owned());
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
