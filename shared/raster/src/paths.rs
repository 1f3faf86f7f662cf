//! Asset hrefs -> paths GDAL opens.

/// `s3://b/k` -> `/vsis3/b/k`, `http(s)://` -> `/vsicurl/...`, `file://` stripped.
pub fn gdal_path(href: &str) -> String {
    if let Some(rest) = href.strip_prefix("s3://") {
        format!("/vsis3/{rest}")
    } else if href.starts_with("http://") || href.starts_with("https://") {
        format!("/vsicurl/{href}")
    } else if let Some(rest) = href.strip_prefix("file://") {
        rest.to_string()
    } else {
        href.to_string()
    }
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
}
