//! Short content digests (of configurations, plans) recorded in outputs and the ledger.

use sha2::{Digest, Sha256};

/// First 16 hex digits of the SHA-256 of `bytes`.
pub fn short_digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    hex::encode(&d[..8])
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable() {
        assert_eq!(super::short_digest(b"abc"), "ba7816bf8f01cfea");
    }
}
