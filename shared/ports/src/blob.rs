use crate::error::Result;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// An object store. Writes are atomic: a reader sees a whole object or none.
pub trait BlobStore: Send + Sync {
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    /// Upload a local file (large outputs are written locally first, then put).
    fn put_file(&self, key: &str, path: &Path) -> Result<()>;
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>>;
    fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;
    /// Keys under a prefix, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    fn delete(&self, key: &str) -> Result<()>;
    /// The object's address for people and STAC hrefs (`/abs/path`, `s3://b/k`).
    fn url(&self, key: &str) -> String;
    /// The path GDAL opens the object by (`/abs/path`, `/vsis3/b/k`).
    fn gdal_path(&self, key: &str) -> String;
    /// Remove what interrupted writes left in the "directory" `dir` (a writer killed
    /// between starting and finishing an object). Only the task's owner calls it, for its
    /// own tile. Returns how many were removed. S3 needs nothing: an object appears whole
    /// or not at all, and the bucket's lifecycle rule aborts unfinished multipart uploads.
    fn discard_partials(&self, dir: &str) -> Result<usize> {
        let _ = dir;
        Ok(0)
    }
    /// The same store, writing every object with S3's canned ACL `acl` (odc-stats'
    /// `s3_acl`: `public-read`, `bucket-owner-full-control`, ...). None where objects
    /// carry no ACL (a directory).
    fn with_canned_acl(&self, acl: &str) -> Option<std::sync::Arc<dyn BlobStore>> {
        let _ = acl;
        None
    }
}

/// S3's canned ACLs for objects, as run files name them.
pub const CANNED_ACLS: [&str; 7] = [
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// Reject keys that could escape the store's root.
pub fn check_key(key: &str) -> Result<()> {
    use crate::error::PortError::BadKey;
    let bad = |why: &str| Err(BadKey { key: key.to_string(), why: why.to_string() });
    if key.is_empty() {
        return bad("empty");
    }
    if key.starts_with('/') || key.contains('\\') || key.contains('\0') {
        return bad("keys are relative, '/'-separated paths");
    }
    if key.split('/').any(|s| s == ".." || s == ".") {
        return bad("'.' and '..' segments are not allowed");
    }
    Ok(())
}
