//! A small HTTP file server for tests of HTTP inputs: GET and HEAD with single byte
//! ranges (what GDAL's /vsicurl/ sends), redirects by path prefix, and a log of the paths
//! requested (to show which hops were made).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct FileServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Every request path, in order.
    pub hits: Arc<Mutex<Vec<String>>>,
}

/// Serve `root` under every path prefix in `mounts` (`/cogs` -> root); requests whose path
/// starts with a `redirects` key get a 302 to the value with the rest of the path appended.
pub fn serve(root: PathBuf, mounts: &[&str], redirects: Vec<(String, String)>) -> FileServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(Vec::new()));
    let (log, mounts) = (hits.clone(), mounts.iter().map(|m| m.to_string()).collect::<Vec<_>>());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (root, mounts, redirects, log) = (root.clone(), mounts.clone(), redirects.clone(), log.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end().to_string();
                    if line.is_empty() {
                        break;
                    }
                    head.push(line);
                }
                let mut parts = head[0].split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("/").to_string());
                log.lock().unwrap().push(path.clone());
                let mut out = conn;
                if let Some((from, to)) = redirects.iter().find(|(from, _)| path.starts_with(from.as_str())) {
                    let location = format!("{to}{}", &path[from.len()..]);
                    let _ = write!(
                        out,
                        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return;
                }
                let file = mounts
                    .iter()
                    .find_map(|m| path.strip_prefix(m.as_str()))
                    .map(|rest| root.join(rest.trim_start_matches('/')))
                    .and_then(|p| std::fs::read(p).ok());
                let Some(bytes) = file else {
                    let _ = write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                };
                let range = head.iter().find_map(|h| {
                    let v = h.strip_prefix("Range: bytes=").or_else(|| h.strip_prefix("range: bytes="))?;
                    let (a, b) = v.split_once('-')?;
                    let a: usize = a.parse().ok()?;
                    let b: usize = b.parse().unwrap_or(bytes.len() - 1).min(bytes.len().saturating_sub(1));
                    Some((a, b))
                });
                let (status, body, extra) = match range {
                    Some((a, b)) if a < bytes.len() => (
                        "206 Partial Content",
                        &bytes[a..=b],
                        format!("Content-Range: bytes {a}-{b}/{}\r\n", bytes.len()),
                    ),
                    _ => ("200 OK", &bytes[..], String::new()),
                };
                let _ = write!(
                    out,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                if method != "HEAD" {
                    let _ = out.write_all(body);
                }
            });
        }
    });
    FileServer { base, hits }
}
