//! Asset hrefs -> paths GDAL opens.

/// `s3://b/k` -> `/vsis3/b/k`, `http(s)://` -> `/vsicurl/...`, `file://` stripped. With
/// the egress guard installed, HTTP inputs go through it:
/// `/vsicurl?proxy=http://127.0.0.1:PORT&url=...` (both percent-encoded).
pub fn gdal_path(href: &str) -> String {
    if let Some(rest) = href.strip_prefix("s3://") {
        format!("/vsis3/{rest}")
    } else if href.starts_with("http://") || href.starts_with("https://") {
        match crate::egress::proxy() {
            Some(addr) => {
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                format!("/vsicurl?proxy={}&url={}", enc(&format!("http://{addr}")), enc(href))
            }
            None => format!("/vsicurl/{href}"),
        }
    } else if let Some(rest) = href.strip_prefix("file://") {
        rest.to_string()
    } else {
        href.to_string()
    }
}

/// Whether a GDAL path reads over the network (S3 or HTTP).
pub fn is_remote(path: &str) -> bool {
    path.starts_with("/vsis3/") || path.starts_with("/vsicurl/") || path.starts_with("/vsicurl?")
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths() {
        assert_eq!(super::gdal_path("s3://b/k/x.tif"), "/vsis3/b/k/x.tif");
        assert_eq!(super::gdal_path("https://h/x.tif"), "/vsicurl/https://h/x.tif");
        assert_eq!(super::gdal_path("file:///d/x.tif"), "/d/x.tif");
        assert_eq!(super::gdal_path("/d/x.tif"), "/d/x.tif");
    }

    /// Whether a GDAL path reads over the network.
    #[test]
    fn remote() {
        for p in ["/vsis3/b/k", "/vsicurl/https://h/x", "/vsicurl?proxy=a&url=b"] {
            assert!(super::is_remote(p), "{p}");
        }
        assert!(!super::is_remote("/d/x.tif"));
    }
}
