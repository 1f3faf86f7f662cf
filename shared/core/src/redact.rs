//! Keeps secrets out of text that is logged or stored: the query strings of URLs (signed
//! URLs carry their signature, credential and session token there), credentials written
//! into URLs (`https://user:password@host`), and AWS access key ids. Applied to every
//! error reason a worker records and to GDAL's messages before they reach the logs.

use regex::Regex;
use std::sync::OnceLock;

/// `text` with URL queries, URL credentials and access key ids replaced by `REDACTED`.
/// GDAL's option form of an HTTP path (`/vsicurl?proxy=...&url=<percent-encoded URL>`) is
/// first written back as `/vsicurl/<URL>`, so its URL is redacted like any other.
pub fn redact(text: &str) -> String {
    static VSICURL_OPTIONS: OnceLock<Regex> = OnceLock::new();
    let options = VSICURL_OPTIONS.get_or_init(|| Regex::new(r#"/vsicurl\?[^\s"'<>`]*"#).expect("valid"));
    let text = options.replace_all(text, |c: &regex::Captures| {
        let url = c[0].split('&').find_map(|kv| kv.strip_prefix("url=").or_else(|| kv.strip_prefix("/vsicurl?url=")));
        match url {
            Some(enc) => format!("/vsicurl/{}", percent_decode(enc)),
            None => "/vsicurl?REDACTED".to_string(),
        }
    });
    redact_urls(&text)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h * 16 + l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn redact_urls(text: &str) -> String {
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
        // GDAL's option form, as the egress guard's paths are written.
        let guarded = "cannot read input '/vsicurl?proxy=http%3A%2F%2F127.0.0.1%3A4&url=https%3A%2F%2Fh%2Fa.tif%3FX-Amz-Signature%3DSECRET%26X-Amz-Credential%3DAKIAIOSFODNN7EXAMPLE': 403";
        assert_eq!(redact(guarded), "cannot read input '/vsicurl/https://h/a.tif?REDACTED': 403");
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
