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
//!   `s3://b/out-other`.

use crate::error::{EngineError, Result};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

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
        Ok(AccessPolicy { outputs: list(outputs, ALLOWED_OUTPUTS_ENV)?, inputs: list(inputs, ALLOWED_INPUTS_ENV)? })
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
        let allowed = match what {
            Use::Input => &self.inputs,
            Use::Output => &self.outputs,
        };
        // A local `..` is an operator's relative path (`--location ../out`) until there is
        // a prefix to stay under; then it could climb out of it.
        if allowed.is_some() && matches!(loc, Location::Local(_)) && local_part(location).split('/').any(|s| s == "..")
        {
            return Err(refuse(format!("its path has '..' segments, refused while {} is set", what.env())));
        }
        match allowed {
            Some(prefixes) if !prefixes.iter().any(|p| within(&loc, p)) => Err(refuse(format!(
                "it is not under an allowed prefix ({}={}); write there, or add its prefix to {}",
                what.env(),
                prefixes.iter().map(describe).collect::<Vec<_>>().join(","),
                what.env()
            ))),
            _ => Ok(()),
        }
    }
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
            url::Host::Ipv4(ip) => ip.is_link_local() || ip.is_unspecified(),
            url::Host::Ipv6(ip) => (ip.segments()[0] & 0xffc0) == 0xfe80 || ip.segments()[..4] == [0xfd00, 0xec2, 0, 0],
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
