//! Where a run may read and write. Run files, STAC items and queue messages come from
//! outside, so every location they name is checked here before anything is opened:
//!
//! - always: a location is a plain `s3://bucket/key`, `http(s)://host/path`, `file://path`
//!   or local path. GDAL virtual paths (`/vsi...`), other schemes, `.`/`..` segments,
//!   percent-encoded dots and slashes, backslashes, credentials in URLs, queries and
//!   fragments (outputs), control characters and link-local hosts (the instance metadata
//!   service) are refused;
//! - when configured (`STRATUS_ALLOWED_OUTPUTS`, `STRATUS_ALLOWED_INPUTS`: comma-separated
//!   location prefixes, set by the Terraform module on every function): outputs only under
//!   the output prefixes, inputs (STAC sources and asset hrefs) only under the input ones.
//!   A prefix matches at a path-segment boundary: `s3://b/out` allows `s3://b/out/x`, not
//!   `s3://b/out-other`. Local paths are also checked by their real path (symlinks
//!   resolved), so a link under an allowed prefix cannot point outside it;
//! - HTTP hosts: link-local addresses (the instance metadata service) are always refused,
//!   loopback and private ones unless an allowed input prefix names that origin. Host names
//!   are resolved and every address checked; the same rules apply to every hop GDAL makes
//!   for an HTTP input (redirects included), through the egress guard
//!   (`stratus_raster::egress`), which connects only to the addresses it checked.

use crate::error::{EngineError, Result};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const ALLOWED_OUTPUTS_ENV: &str = "STRATUS_ALLOWED_OUTPUTS";
pub const ALLOWED_INPUTS_ENV: &str = "STRATUS_ALLOWED_INPUTS";

/// A checked location, split into what prefix matching compares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    S3 { bucket: String, key: String },
    Http { origin: String, path: String },
    Local(PathBuf),
}

/// What a location is used for (outputs are stricter: no query strings at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Input,
    Output,
}

impl Use {
    fn name(self) -> &'static str {
        match self {
            Use::Input => "input",
            Use::Output => "output location",
        }
    }
    fn env(self) -> &'static str {
        match self {
            Use::Input => ALLOWED_INPUTS_ENV,
            Use::Output => ALLOWED_OUTPUTS_ENV,
        }
    }
}

/// The allow-lists; `None` allows any well-formed location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    outputs: Option<Vec<Location>>,
    inputs: Option<Vec<Location>>,
    /// The local prefixes with their symlinks resolved, once (a plan checks a million hrefs).
    real_outputs: Vec<Location>,
    real_inputs: Vec<Location>,
}

impl AccessPolicy {
    /// From comma-separated prefix lists (empty or missing: no list).
    pub fn new(outputs: Option<&str>, inputs: Option<&str>) -> Result<AccessPolicy> {
        let list = |text: Option<&str>, env: &str| -> Result<Option<Vec<Location>>> {
            let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(None) };
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| parse(p, Use::Input).map_err(|why| EngineError::Config(format!("{env}: prefix '{p}': {why}"))))
                .collect::<Result<Vec<_>>>()
                .map(Some)
        };
        let (outputs, inputs) = (list(outputs, ALLOWED_OUTPUTS_ENV)?, list(inputs, ALLOWED_INPUTS_ENV)?);
        let real = |l: &Option<Vec<Location>>| -> Vec<Location> {
            l.iter().flatten().filter(|p| matches!(p, Location::Local(_))).map(real_location).collect()
        };
        Ok(AccessPolicy { real_outputs: real(&outputs), real_inputs: real(&inputs), outputs, inputs })
    }

    /// From `STRATUS_ALLOWED_OUTPUTS` and `STRATUS_ALLOWED_INPUTS`.
    pub fn from_env() -> Result<AccessPolicy> {
        let get = |k: &str| std::env::var(k).ok();
        AccessPolicy::new(get(ALLOWED_OUTPUTS_ENV).as_deref(), get(ALLOWED_INPUTS_ENV).as_deref())
    }

    /// The process's policy, read from the environment once.
    pub fn current() -> Result<&'static AccessPolicy> {
        static POLICY: OnceLock<std::result::Result<AccessPolicy, String>> = OnceLock::new();
        POLICY
            .get_or_init(|| AccessPolicy::from_env().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| EngineError::Config(e.clone()))
    }

    pub fn check_output(&self, location: &str) -> Result<()> {
        self.check(location, Use::Output)
    }

    pub fn check_input(&self, location: &str) -> Result<()> {
        self.check(location, Use::Input)
    }

    fn check(&self, location: &str, what: Use) -> Result<()> {
        let refuse = |why: String| EngineError::Refused {
            what: what.name(),
            location: stratus_core::redact::redact(location),
            why,
        };
        let loc = parse(location, what).map_err(refuse)?;
        let (allowed, real_prefixes) = match what {
            Use::Input => (&self.inputs, &self.real_inputs),
            Use::Output => (&self.outputs, &self.real_outputs),
        };
        if let Location::Http { origin, .. } = &loc {
            // Best effort here (a name that does not resolve now is checked again, and
            // must resolve, when the egress guard connects).
            self.check_hosts(location, origin, false).map_err(refuse)?;
        }
        // A local `..` is an operator's relative path (`--location ../out`) until there is
        // a prefix to stay under; then it could climb out of it.
        if allowed.is_some() && matches!(loc, Location::Local(_)) && local_part(location).split('/').any(|s| s == "..")
        {
            return Err(refuse(format!("its path has '..' segments, refused while {} is set", what.env())));
        }
        let outside =
            |loc: &Location, prefixes: &[Location]| !prefixes.iter().chain(real_prefixes).any(|p| within(loc, p));
        match allowed {
            Some(prefixes) if outside(&loc, prefixes) => Err(refuse(format!(
                "it is not under an allowed prefix ({}={}); write there, or add its prefix to {}",
                what.env(),
                prefixes.iter().map(describe).collect::<Vec<_>>().join(","),
                what.env()
            ))),
            // A symlink (anywhere on the path) under an allowed prefix that leads outside.
            Some(prefixes) if matches!(loc, Location::Local(_)) && outside(&real_location(&loc), prefixes) => {
                Err(refuse(format!(
                    "it resolves (through a symbolic link) to '{}', which is not under an allowed prefix ({}={})",
                    describe(&real_location(&loc)),
                    what.env(),
                    prefixes.iter().map(describe).collect::<Vec<_>>().join(",")
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether an allowed input prefix names this HTTP origin (which allows its loopback
    /// or private addresses).
    fn names_origin(&self, origin: &str) -> bool {
        self.inputs.iter().flatten().any(|p| matches!(p, Location::Http { origin: o, .. } if o == origin))
    }

    /// The address rules for an HTTP location's host: its addresses, or why not.
    /// `must_resolve`: a name that does not resolve is an error (the guard is about to
    /// connect), not a pass (a plan checks hrefs it reads later).
    fn check_hosts(&self, url: &str, origin: &str, must_resolve: bool) -> std::result::Result<Vec<SocketAddr>, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("it is not a valid URL ({e})"))?;
        let host = parsed.host().ok_or("it has no host")?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match &host {
            url::Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
            url::Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
            url::Host::Domain(name) => match resolve(name, port) {
                Ok(a) => a,
                Err(e) if must_resolve => return Err(format!("its host '{name}' does not resolve: {e}")),
                Err(_) => return Ok(Vec::new()),
            },
        };
        for a in &addrs {
            match address_kind(a.ip()) {
                AddressKind::Public => {}
                AddressKind::LinkLocal => {
                    return Err(format!(
                        "its host is (or resolves to) the link-local address {} (such as the instance metadata service), always refused",
                        a.ip()
                    ))
                }
                AddressKind::Internal(what) if !self.names_origin(origin) => {
                    return Err(format!(
                        "its host is (or resolves to) the {what} address {}; to read from it, add {origin} to {ALLOWED_INPUTS_ENV}",
                        a.ip()
                    ))
                }
                AddressKind::Internal(_) => {}
            }
        }
        Ok(addrs)
    }

    /// The egress guard's check of one hop GDAL makes for an HTTP input: under the input
    /// allow-list (a `tunnel`, an HTTPS `CONNECT`, shows only its origin), and to
    /// addresses the host rules allow. Returns the addresses to connect to.
    pub fn check_hop(&self, url: &str, tunnel: bool) -> std::result::Result<Vec<SocketAddr>, String> {
        let loc = parse(url, Use::Input)?;
        let Location::Http { origin, .. } = &loc else { return Err("not an HTTP location".into()) };
        if let Some(prefixes) = &self.inputs {
            let ok = prefixes.iter().any(|p| match p {
                Location::Http { origin: o, .. } if tunnel => o == origin,
                _ => within(&loc, p),
            });
            if !ok {
                return Err(format!(
                    "not under an allowed input prefix ({ALLOWED_INPUTS_ENV}={}): a redirect from an allowed host is refused too",
                    prefixes.iter().map(describe).collect::<Vec<_>>().join(",")
                ));
            }
        }
        self.check_hosts(url, origin, true)
    }
}

/// What kind of address a host has, for the host rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressKind {
    Public,
    /// Link-local (169.254.0.0/16, fe80::/10) and AWS's metadata address fd00:ec2::254:
    /// never read.
    LinkLocal,
    /// Loopback, private, shared (CGNAT), unique-local, unspecified: only when allowed by name.
    Internal(&'static str),
}

fn address_kind(ip: IpAddr) -> AddressKind {
    use AddressKind::*;
    let v4 = |ip: std::net::Ipv4Addr| {
        let o = ip.octets();
        if ip.is_link_local() {
            LinkLocal
        } else if ip.is_loopback() {
            Internal("loopback")
        } else if ip.is_private() {
            Internal("private")
        } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
            Internal("shared (carrier-grade NAT)")
        } else if o[0] == 0 || ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
            Internal("reserved")
        } else {
            Public
        }
    };
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            let seg = ip.segments();
            if ip.is_loopback() {
                return Internal("loopback");
            }
            if ip.is_unspecified() {
                return Internal("unspecified");
            }
            // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64
            // (64:ff9b::a.b.c.d) addresses reach the IPv4 address inside.
            if let Some(inner) = ip.to_ipv4_mapped() {
                return v4(inner);
            }
            if seg[..6] == [0, 0, 0, 0, 0, 0] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = ip.octets();
                return v4(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            if (seg[0] & 0xffc0) == 0xfe80 || seg[..4] == [0xfd00, 0xec2, 0, 0] {
                LinkLocal
            } else if (seg[0] & 0xfe00) == 0xfc00 {
                Internal("unique-local (private)")
            } else if (seg[0] & 0xffc0) == 0xfec0 {
                Internal("site-local")
            } else if seg[0] >> 8 == 0xff {
                Internal("multicast")
            } else {
                Public
            }
        }
    }
}

/// A host's addresses, cached for a minute (a plan checks thousands of hrefs on a few hosts).
fn resolve(host: &str, port: u16) -> std::result::Result<Vec<SocketAddr>, String> {
    type Cache = HashMap<(String, u16), (Instant, std::result::Result<Vec<SocketAddr>, String>)>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (host.to_string(), port);
    if let Some((at, r)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        if at.elapsed() < Duration::from_secs(60) {
            return r.clone();
        }
    }
    let r = (host, port).to_socket_addrs().map(|a| a.collect::<Vec<_>>()).map_err(|e| e.to_string());
    let r = match r {
        Ok(a) if a.is_empty() => Err("no addresses".to_string()),
        other => other,
    };
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (Instant::now(), r.clone()));
    r
}

/// A local location with symlinks resolved (as far as the path exists); others as given.
fn real_location(loc: &Location) -> Location {
    let Location::Local(p) = loc else { return loc.clone() };
    // The longest existing ancestor is resolved; the rest (not yet created) is appended.
    let mut existing = p.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Location::Local(out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return loc.clone(),
        }
    }
}

/// Send GDAL's HTTP input reads through the egress guard, checked against the process's
/// policy (once per process; cheap after that).
pub fn guard_http_inputs() -> Result<()> {
    let policy = AccessPolicy::current()?.clone();
    let check: Arc<stratus_raster::egress::HopCheck> =
        Arc::new(move |url: &str, tunnel: bool| policy.check_hop(url, tunnel));
    stratus_raster::egress::install(check)
        .map(|_| ())
        .map_err(|e| EngineError::Io { path: "the egress guard's loopback socket".into(), source: e })
}

/// Check an output location against the process's policy.
pub fn check_output(location: &str) -> Result<()> {
    AccessPolicy::current()?.check_output(location)
}

/// Check an input location (a STAC source or an asset href) against the process's policy.
pub fn check_input(location: &str) -> Result<()> {
    AccessPolicy::current()?.check_input(location)
}

fn describe(l: &Location) -> String {
    match l {
        Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        Location::Http { origin, path } => format!("{origin}{path}"),
        Location::Local(p) => p.display().to_string(),
    }
}

fn within(loc: &Location, prefix: &Location) -> bool {
    let under = |path: &str, pre: &str| {
        let pre = pre.trim_end_matches('/');
        pre.is_empty() || path == pre || path.strip_prefix(pre).is_some_and(|rest| rest.starts_with('/'))
    };
    match (loc, prefix) {
        (Location::S3 { bucket: b, key: k }, Location::S3 { bucket: pb, key: pk }) => b == pb && under(k, pk),
        (Location::Http { origin: o, path: p }, Location::Http { origin: po, path: pp }) => o == po && under(p, pp),
        (Location::Local(p), Location::Local(pp)) => p.starts_with(pp),
        _ => false,
    }
}

/// The URL tricks refused in any location.
fn suspicious(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("it is empty".into());
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Some(format!("it contains the control character {c:?}"));
    }
    if text.contains('\\') {
        return Some("it contains a backslash; use '/'".into());
    }
    let lower = text.to_ascii_lowercase();
    // In the path only: a signed URL's query legitimately encodes slashes.
    let path = lower.split(['?', '#']).next().unwrap_or_default();
    for enc in ["%2e", "%2f", "%5c", "%00"] {
        if path.contains(enc) {
            return Some(format!("it contains the percent-encoded '{enc}' (encoded dots and slashes are refused)"));
        }
    }
    if lower.starts_with("/vsi") {
        return Some("GDAL virtual file system paths are not accepted: give s3://, https:// or a file path".into());
    }
    None
}

fn dot_segments(path: &str) -> bool {
    path.split('/').any(|s| s == ".." || s == ".")
}

fn parse(text: &str, what: Use) -> std::result::Result<Location, String> {
    if let Some(why) = suspicious(text) {
        return Err(why);
    }
    if let Some(rest) = text.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !bucket.starts_with(['.', '-'])
            && !bucket.contains("..");
        if !bucket_ok {
            return Err(format!("'{bucket}' is not a valid S3 bucket name"));
        }
        if dot_segments(key) || key.starts_with('/') || key.contains("//") {
            return Err("its key has '.', '..' or empty path segments".into());
        }
        if key.contains(['?', '#']) {
            return Err("S3 keys with '?' or '#' are refused (they read as URL queries and fragments)".into());
        }
        return Ok(Location::S3 { bucket: bucket.into(), key: key.into() });
    }
    if let Some((scheme, _)) = text.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" && scheme != "file" {
            return Err(format!("the scheme '{scheme}://' is not supported: use s3://, https:// or a file path"));
        }
        if scheme == "file" {
            return local(local_part(text));
        }
        if what == Use::Output {
            return Err("outputs go to s3:// or a local directory, not to HTTP".into());
        }
        let url = url::Url::parse(text).map_err(|e| format!("it is not a valid URL ({e})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("it carries credentials in the URL".into());
        }
        let host = url.host().ok_or("it has no host")?;
        let link_local = match &host {
            url::Host::Ipv4(ip) => address_kind(IpAddr::V4(*ip)) == AddressKind::LinkLocal,
            url::Host::Ipv6(ip) => address_kind(IpAddr::V6(*ip)) == AddressKind::LinkLocal,
            url::Host::Domain(_) => false,
        };
        if link_local {
            return Err("link-local hosts (such as the instance metadata service) are refused".into());
        }
        // The raw path, not the parsed one: `url` resolves `..` away silently.
        let raw_path = text[text.find("://").unwrap_or(0) + 3..].split(['?', '#']).next().unwrap_or_default();
        if dot_segments(raw_path) {
            return Err("its path has '.' or '..' segments".into());
        }
        let origin = url.origin().ascii_serialization();
        return Ok(Location::Http { origin, path: url.path().to_string() });
    }
    local(text)
}

fn local_part(text: &str) -> &str {
    text.strip_prefix("file://").unwrap_or(text)
}

/// A local path, made absolute and with `..` resolved lexically (how it compares with the
/// allowed prefixes; `check` refuses `..` outright when there are any).
fn local(path: &str) -> std::result::Result<Location, String> {
    let p = Path::new(path);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?.join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(Location::Local(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy::new(
            Some("s3://out-bucket/products, /srv/out"),
            Some("s3://in-bucket/l2a/, https://data.example.org/cogs"),
        )
        .unwrap()
    }

    #[test]
    fn outputs_stay_under_the_configured_prefix() {
        let p = policy();
        for ok in ["s3://out-bucket/products", "s3://out-bucket/products/gm/1.0.0", "/srv/out/x"] {
            p.check_output(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "s3://out-bucket/products-evil/x",
            "s3://out-bucket/products/../secrets",
            "s3://out-bucket/products/./x",
            "s3://out-bucket/products/%2e%2e/x",
            "s3://out-bucket/products//x",
            "s3://other-bucket/products",
            "s3://out-bucket/products?x=1",
            "S3://out-bucket/products",
            "/srv/out/../etc",
            "/srv/outside",
            "/vsis3/out-bucket/products",
            "https://out-bucket.s3.amazonaws.com/products",
            "gs://out-bucket/products",
            "s3://out-bucket/products\\..\\x",
            "s3://out-bucket/products/\u{0}",
            "",
        ] {
            let e = p.check_output(bad).expect_err(bad).to_string();
            assert!(e.contains("refused"), "{bad}: {e}");
        }
        assert!(p.check_output("s3://out-bucket/elsewhere").unwrap_err().to_string().contains(ALLOWED_OUTPUTS_ENV));
    }

    #[test]
    fn inputs_only_from_the_allow_list() {
        let p = policy();
        for ok in [
            "s3://in-bucket/l2a/2021/B04.tif",
            "https://data.example.org/cogs/a.tif?X-Amz-Credential=K%2F2026&X-Amz-Signature=abc",
        ] {
            p.check_input(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "s3://in-bucket/l2b/B04.tif",
            "s3://in-bucket/l2a/../private/B04.tif",
            "https://data.example.org/cogs-private/a.tif",
            "https://data.example.org.evil.com/cogs/a.tif",
            "https://user:pw@data.example.org/cogs/a.tif",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "/vsicurl/https://data.example.org/cogs/a.tif",
            "/etc/passwd",
        ] {
            assert!(p.check_input(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn without_lists_well_formed_locations_pass_and_tricks_do_not() {
        let p = AccessPolicy::default();
        p.check_output("out").unwrap();
        p.check_output("s3://any-bucket/x").unwrap();
        p.check_input("https://example.com/a.tif").unwrap();
        // Relative local paths are the operator's own while no prefix is configured.
        p.check_output("../out").unwrap();
        p.check_input("../tests/data/items.json").unwrap();
        assert!(p.check_output("s3://any-bucket/x/../y").is_err());
        assert!(p.check_input("http://169.254.169.254/").is_err());
        assert!(p.check_input("/vsizip//tmp/a.zip").is_err());
    }

    #[test]
    fn metadata_addresses_are_refused_in_every_spelling() {
        let p = AccessPolicy::default();
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::169.254.169.254]/",
            "http://[::169.254.169.254]/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
        ] {
            let e = p.check_input(bad).expect_err(bad).to_string();
            assert!(e.contains("link-local"), "{bad}: {e}");
        }
    }

    #[test]
    fn loopback_and_private_hosts_only_when_their_origin_is_listed() {
        let none = AccessPolicy::default();
        for bad in [
            "http://127.0.0.1:8080/a.tif",
            "http://10.1.2.3/a.tif",
            "http://192.168.0.7/a.tif",
            "http://172.20.0.1/a.tif",
            "http://100.64.0.1/a.tif",
            "http://[::1]/a.tif",
            "http://[::ffff:127.0.0.1]/a.tif",
            "http://[fc00::1]/a.tif",
            "http://localhost:8080/a.tif",
        ] {
            let e = none.check_input(bad).expect_err(bad).to_string();
            assert!(e.contains(ALLOWED_INPUTS_ENV), "{bad}: the refusal says how to allow it: {e}");
        }
        let named = AccessPolicy::new(None, Some("http://127.0.0.1:8080/cogs")).unwrap();
        named.check_input("http://127.0.0.1:8080/cogs/a.tif").unwrap();
        assert!(named.check_input("http://127.0.0.1:8081/cogs/a.tif").is_err(), "another port is another origin");
        // The egress guard's hop check: the full URL for plain HTTP, the origin for a tunnel.
        assert_eq!(named.check_hop("http://127.0.0.1:8080/cogs/a.tif", false).unwrap().len(), 1);
        assert!(named.check_hop("http://127.0.0.1:8080/private/a.tif", false).is_err());
        assert!(named.check_hop("https://127.0.0.1:8080/", true).is_err(), "https is another origin");
        let tls = AccessPolicy::new(None, Some("https://127.0.0.1:8443/cogs")).unwrap();
        assert!(tls.check_hop("https://127.0.0.1:8443/", true).is_ok());
        assert!(named.check_hop("http://169.254.169.254/latest/", false).is_err());
    }

    #[test]
    fn symlinks_out_of_an_allowed_prefix_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("allowed");
        let secret = dir.path().join("secret.tif");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::write(&secret, b"x").unwrap();
        std::fs::write(allowed.join("fine.tif"), b"x").unwrap();
        std::os::unix::fs::symlink(&secret, allowed.join("B04.tif")).unwrap();
        std::os::unix::fs::symlink(dir.path(), allowed.join("up")).unwrap();
        let p = AccessPolicy::new(None, Some(allowed.to_str().unwrap())).unwrap();
        p.check_input(allowed.join("fine.tif").to_str().unwrap()).unwrap();
        for bad in [allowed.join("B04.tif"), allowed.join("up/secret.tif")] {
            let e = p.check_input(bad.to_str().unwrap()).expect_err("a link out").to_string();
            assert!(e.contains("symbolic link"), "{e}");
        }
    }

    #[test]
    fn refusals_do_not_echo_signatures() {
        let e = policy().check_input("https://evil.example.com/a.tif?X-Amz-Signature=SECRET").unwrap_err().to_string();
        assert!(!e.contains("SECRET"), "{e}");
    }

    #[test]
    fn bad_prefixes_are_configuration_errors() {
        let e = AccessPolicy::new(Some("s3://b/../x"), None).unwrap_err().to_string();
        assert!(e.contains(ALLOWED_OUTPUTS_ENV), "{e}");
    }
}
