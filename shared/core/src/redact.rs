//! Keeps secrets out of text that is logged or stored: the query strings of URLs (signed
//! URLs carry their signature, credential and session token there), credentials written
//! into URLs (`https://user:password@host`), and AWS access key ids. Applied to every
//! error reason a worker records and to GDAL's messages before they reach the logs.

use regex::Regex;
use std::sync::OnceLock;

/// `text` with URL queries, URL credentials and access key ids replaced by `REDACTED`.
pub fn redact(text: &str) -> String {
    static PATTERNS: OnceLock<[(Regex, &'static str); 3]> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            // scheme://user:pass@host -> scheme://REDACTED@host
            (Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@").expect("valid"), "${1}REDACTED@"),
            // ...?query (up to whitespace or a quote) -> ...?REDACTED
            (Regex::new(r#"(?i)(\b[a-z][a-z0-9+.-]*://[^\s?"'<>]*)\?[^\s"'<>]*"#).expect("valid"), "${1}?REDACTED"),
            // AWS access key ids (long-term AKIA..., temporary ASIA...)
            (Regex::new(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b").expect("valid"), "REDACTED-KEY-ID"),
        ]
    });
    let mut out = std::borrow::Cow::Borrowed(text);
    for (re, with) in patterns {
        if let std::borrow::Cow::Owned(s) = re.replace_all(&out, *with) {
            out = std::borrow::Cow::Owned(s);
        }
    }
    out.into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn signed_urls_and_credentials_are_removed() {
        let signed = "reading https://b.s3.amazonaws.com/k/B04.tif?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2026&X-Amz-Signature=deadbeef failed";
        let r = redact(signed);
        assert_eq!(r, "reading https://b.s3.amazonaws.com/k/B04.tif?REDACTED failed");
        assert_eq!(redact("/vsicurl/https://u:p@host/a.tif: 403"), "/vsicurl/https://REDACTED@host/a.tif: 403");
        assert_eq!(redact("key AKIAIOSFODNN7EXAMPLE used"), "key REDACTED-KEY-ID used");
        assert_eq!(redact("\"href\": \"https://h/a.tif?sig=1\""), "\"href\": \"https://h/a.tif?REDACTED\"");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for t in ["s3://bucket/x/B04.tif: not found", "tile x+028/y+028 failed: what?", "a@b.c wrote"] {
            assert_eq!(redact(t), t);
        }
    }
}
