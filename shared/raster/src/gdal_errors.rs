//! GDAL's error handler, and what it saw of the network on this thread.
//!
//! GDAL reports how its HTTP requests went only through its error handler: a retry as a
//! warning ("HTTP error code: 503 ... Retrying again in 1.0 secs"), a failed request as
//! `CPLE_HttpResponse` ("HTTP response code: 503", "CURL error: ..."), while the error a
//! block read finally returns is a generic decode failure ("TIFFFillTile: Read error").
//! So the handler records, per thread (GDAL reports on the thread that made the call),
//! what the network did; [`crate::warp::with_remote_retries`] clears it before each read
//! and asks [`network_at_fault`] when the read fails, so a read that failed because of the
//! network becomes [`crate::RasterError::Unavailable`]. This is the one place GDAL's words
//! are interpreted; everything downstream decides on the variant.

use gdal::errors::CplErrType;
use std::cell::Cell;

/// GDAL's `CPLE_HttpResponse`: an HTTP request failed (status or transport).
const CPLE_HTTP_RESPONSE: i32 = 11;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Seen {
    /// GDAL retried a request (it retries only statuses and transport errors it deems
    /// retryable: 429, 5xx, timeouts, resets).
    retried: bool,
    /// The status of a failed HTTP request.
    status: Option<u16>,
    /// A request failed below HTTP (connect, DNS, TLS, reset, timeout).
    transport: bool,
}

thread_local! {
    static SEEN: Cell<Seen> = const { Cell::new(Seen { retried: false, status: None, transport: false }) };
}

/// Forget what this thread saw (before a read).
pub(crate) fn clear() {
    SEEN.with(|s| s.set(Seen::default()));
}

/// Whether the network was at fault for what this thread read since [`clear`]: GDAL gave
/// up retrying, or a request failed with 429, a 5xx or a transport error. Not found,
/// access denied and bad bytes are not the network's fault.
pub(crate) fn network_at_fault() -> bool {
    let s = SEEN.with(Cell::get);
    s.retried || s.transport || matches!(s.status, Some(429 | 500..=599))
}

fn record(class: CplErrType, code: i32, msg: &str) {
    let mut s = SEEN.with(Cell::get);
    match class {
        CplErrType::Warning if msg.contains("Retrying") => s.retried = true,
        CplErrType::Failure | CplErrType::Fatal if code == CPLE_HTTP_RESPONSE => {
            match msg.strip_prefix("HTTP response code: ").and_then(|r| r.trim().parse::<u16>().ok()) {
                Some(status) => s.status = Some(status),
                None => s.transport = msg.starts_with("CURL error"),
            }
        }
        _ => return,
    }
    SEEN.with(|c| c.set(s));
}

/// GDAL's messages go to our logs without URL queries (signed URLs) or key ids, and what
/// they say of the network is recorded for the thread.
pub(crate) fn install_handler() {
    gdal::config::set_error_handler(|class, code, msg| {
        record(class, code, msg);
        let msg = stratus_core::redact::redact(msg);
        match class {
            CplErrType::Failure | CplErrType::Fatal => tracing::debug!(code, "GDAL: {msg}"),
            CplErrType::Warning if msg.contains("Retrying") => tracing::warn!(code, "GDAL retry: {msg}"),
            _ => tracing::trace!(code, "GDAL: {msg}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen_after(events: &[(CplErrType, i32, &str)]) -> bool {
        clear();
        for (class, code, msg) in events {
            record(*class, *code, msg);
        }
        network_at_fault()
    }

    #[test]
    fn statuses_and_transport_failures_are_classified() {
        use CplErrType::*;
        assert!(seen_after(&[(Failure, 11, "HTTP response code: 503")]));
        assert!(seen_after(&[(Failure, 11, "HTTP response code: 429")]));
        assert!(seen_after(&[(Failure, 11, "CURL error: Failed to connect to 127.0.0.1 port 1")]));
        assert!(seen_after(&[
            (Warning, 1, "HTTP error code: 503 - http://h/x.tif. Retrying again in 1.0 secs"),
            (Failure, 1, "TIFFFillTile:Read error at row 0, col 0, tile 0; got 0 bytes, expected 9"),
        ]));
        assert!(!seen_after(&[(Failure, 11, "HTTP response code: 404")]));
        assert!(!seen_after(&[(Failure, 11, "HTTP response code: 403")]));
        assert!(!seen_after(&[(Failure, 1, "TIFFReadEncodedTile() failed.")]));
        // Cleared between reads.
        clear();
        assert!(!network_at_fault());
    }
}
