//! The egress guard: every HTTP request GDAL makes for an HTTP input goes through a small
//! forward proxy in this process, which checks each hop before connecting.
//!
//! Why a proxy: GDAL (3.6) makes libcurl follow redirects (`CURLOPT_FOLLOWLOCATION`) with no
//! option to turn that off or to restrict where they go, and resolves host names itself,
//! so a check of the href before opening it says nothing about the hosts actually
//! contacted: an allowed host could redirect to the instance metadata service or to any
//! other host, and a name could resolve to a private address. Through the proxy, every
//! hop (the first request and each redirect, which libcurl sends through the proxy again)
//! is checked by the installed [`HopCheck`], which also resolves the host; the proxy then
//! connects to exactly the addresses it checked, so a name cannot resolve differently
//! between check and connect.
//!
//! HTTP inputs are opened as `/vsicurl?proxy=...&url=...` (see [`crate::paths::gdal_path`]),
//! so only they go through the guard; S3 reads and GDAL's own credential requests do not.
//! Plain `http://` requests arrive in absolute form and are checked on their full URL;
//! `https://` ones arrive as `CONNECT host:port` and are checked on their origin (the path is
//! inside TLS). Each plain request gets its own upstream connection (`Connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Decides whether a hop may be made: given the URL and whether it is a tunnel (`CONNECT`,
/// whose URL is `https://host:port/`: the path is not visible), the addresses to connect
/// to, or why not.
pub type HopCheck = dyn Fn(&str, bool) -> Result<Vec<SocketAddr>, String> + Send + Sync;

struct Guard {
    addr: SocketAddr,
}

static GUARD: OnceLock<Guard> = OnceLock::new();

/// The longest request head accepted from libcurl.
const MAX_HEAD: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Start the guard with `check` (once per process; later calls keep the first check).
/// Returns the proxy's address.
pub fn install(check: Arc<HopCheck>) -> std::io::Result<SocketAddr> {
    if let Some(g) = GUARD.get() {
        return Ok(g.addr);
    }
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    if GUARD.set(Guard { addr }).is_err() {
        // Another thread installed it first; this listener is dropped.
        return Ok(GUARD.get().expect("set").addr);
    }
    // libcurl would let `no_proxy` bypass the proxy for matching hosts.
    for var in ["no_proxy", "NO_PROXY"] {
        if std::env::var_os(var).is_some() {
            tracing::warn!(var, "ignoring {var} for GDAL's HTTP input reads: they all go through the egress guard");
            std::env::remove_var(var);
        }
    }
    std::thread::Builder::new().name("egress-guard".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            let check = check.clone();
            let _ = std::thread::Builder::new().name("egress-conn".into()).spawn(move || {
                if let Err(e) = serve(conn, check.as_ref()) {
                    tracing::debug!(error = %e, "egress guard connection ended");
                }
            });
        }
    })?;
    tracing::debug!(%addr, "egress guard listening");
    Ok(addr)
}

/// The guard's address, if installed.
pub fn proxy() -> Option<SocketAddr> {
    GUARD.get().map(|g| g.addr)
}

fn serve(client: TcpStream, check: &HopCheck) -> std::io::Result<()> {
    client.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let head = read_head(&mut reader)?;
    let Some(request_line) = head.first() else { return Ok(()) };
    let mut parts = request_line.split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or("HTTP/1.1").to_string(),
    );
    let mut client = client;
    if method.eq_ignore_ascii_case("CONNECT") {
        let url = format!("https://{target}/");
        let addrs = match check(&url, true) {
            Ok(a) => a,
            Err(why) => return refuse(&mut client, &url, &why),
        };
        let upstream = match connect(&addrs) {
            Ok(s) => s,
            Err(e) => return bad_gateway(&mut client, &url, &e),
        };
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        // Bytes libcurl sent after the CONNECT head (the TLS hello) are in `reader`.
        let buffered = reader.buffer().to_vec();
        return tunnel(client, upstream, &buffered);
    }
    let url = target.clone();
    if !(url.starts_with("http://")) {
        return refuse(&mut client, &url, "the guard forwards absolute http:// requests and CONNECT only");
    }
    let addrs = match check(&url, false) {
        Ok(a) => a,
        Err(why) => return refuse(&mut client, &url, &why),
    };
    let parsed = match url::Url::parse(&url) {
        Ok(u) => u,
        Err(e) => return refuse(&mut client, &url, &format!("not a URL: {e}")),
    };
    let mut origin_form = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        origin_form.push('?');
        origin_form.push_str(q);
    }
    let mut upstream = match connect(&addrs) {
        Ok(s) => s,
        Err(e) => return bad_gateway(&mut client, &url, &e),
    };
    let mut out = format!("{method} {origin_form} {version}\r\n");
    let mut body_len = 0usize;
    for h in &head[1..] {
        let name = h.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if name.starts_with("proxy-") || name == "connection" || name == "keep-alive" {
            continue;
        }
        if name == "content-length" {
            body_len = h.split(':').nth(1).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes())?;
    if body_len > 0 {
        let mut body = vec![0u8; body_len];
        reader.read_exact(&mut body)?;
        upstream.write_all(&body)?;
    }
    upstream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    std::io::copy(&mut upstream, &mut client)?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// The request line and headers, without the blank line.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        total += n;
        if n == 0 || total > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too long or cut short"));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

fn connect(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to connect to");
    for a in addrs {
        match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn tunnel(client: TcpStream, upstream: TcpStream, buffered: &[u8]) -> std::io::Result<()> {
    let (mut c_read, mut c_write) = (client.try_clone()?, client);
    let (mut u_read, mut u_write) = (upstream.try_clone()?, upstream);
    u_write.write_all(buffered)?;
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut u_write);
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut u_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

fn refuse(client: &mut TcpStream, url: &str, why: &str) -> std::io::Result<()> {
    let url = stratus_core::redact::redact(url);
    tracing::warn!(hop = %url, why, "egress guard refused a request GDAL made for an input");
    respond(client, "403 Forbidden", &format!("refused by Stratus' egress guard: {url}: {why}\n"))
}

fn bad_gateway(client: &mut TcpStream, url: &str, e: &std::io::Error) -> std::io::Result<()> {
    let url = stratus_core::redact::redact(url);
    respond(client, "502 Bad Gateway", &format!("egress guard could not connect to {url}: {e}\n"))
}

fn respond(client: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(msg.as_bytes())?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}
