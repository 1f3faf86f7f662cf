//! The blob store on S3: `s3://bucket/prefix`. Objects appear whole or not at all (S3's
//! PUT semantics); large files go up as multipart uploads, which are aborted on failure.

use crate::client::{remote_error, Aws};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectCannedAcl};
use futures::{StreamExt, TryStreamExt};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use stratus_ports::blob::check_key;
use stratus_ports::{BlobStore, ObjectMeta, PortError};

type Result<T> = std::result::Result<T, PortError>;

/// Files above this go up in parts.
const MULTIPART_THRESHOLD: u64 = 64 << 20;
const PART_SIZE: u64 = 32 << 20;
/// Reads of one object's body before a cut-short body is an error.
const BODY_ATTEMPTS: u32 = 3;
const PARTS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone)]
pub struct S3BlobStore {
    aws: Arc<Aws>,
    bucket: String,
    /// "" or "a/b/" (always ending in '/').
    prefix: String,
    /// The canned ACL every write carries (the bucket's default when None).
    acl: Option<ObjectCannedAcl>,
}

/// Split `s3://bucket/prefix` into its parts.
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| PortError::Other(format!("'{url}' is not an s3:// address (expected s3://BUCKET/PREFIX)")))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty()
        || !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(PortError::Other(format!(
            "'{url}': '{bucket}' is not a valid bucket name (lower-case letters, digits, '-' and '.')"
        )));
    }
    Ok((bucket.to_string(), key.to_string()))
}

impl S3BlobStore {
    /// A store rooted at `s3://bucket/prefix`.
    pub fn open(aws: Arc<Aws>, url: &str) -> Result<S3BlobStore> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(S3BlobStore { aws, bucket, prefix, acl: None })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full_key(&self, key: &str) -> Result<String> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    async fn put_object(&self, full: &str, body: ByteStream) -> Result<()> {
        self.aws
            .s3()
            .put_object()
            .bucket(&self.bucket)
            .key(full)
            .set_acl(self.acl.clone())
            .body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| remote_error("S3", "PutObject", e))
    }

    /// Whether `full` exists with exactly `size` bytes.
    async fn completed_earlier(&self, full: &str, size: u64) -> bool {
        let head = self.aws.s3().head_object().bucket(&self.bucket).key(full).send().await;
        head.is_ok_and(|h| h.content_length() == Some(size as i64))
    }

    async fn put_multipart(&self, full: &str, path: &Path, size: u64) -> Result<()> {
        let s3 = self.aws.s3();
        let up = s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .set_acl(self.acl.clone())
            .send()
            .await
            .map_err(|e| remote_error("S3", "CreateMultipartUpload", e))?;
        let upload_id = up.upload_id().unwrap_or_default().to_string();
        let parts = size.div_ceil(PART_SIZE);
        let uploaded: Result<Vec<CompletedPart>> = futures::stream::iter(0..parts)
            .map(|i| {
                let upload_id = upload_id.clone();
                async move {
                    let start = i * PART_SIZE;
                    let len = PART_SIZE.min(size - start);
                    let mut buf = vec![0u8; len as usize];
                    let mut f = std::fs::File::open(path)
                        .map_err(|source| PortError::Io { path: path.display().to_string(), source })?;
                    f.seek(SeekFrom::Start(start))
                        .and_then(|_| f.read_exact(&mut buf))
                        .map_err(|source| PortError::Io { path: path.display().to_string(), source })?;
                    let part = s3
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(full)
                        .upload_id(&upload_id)
                        .part_number(i as i32 + 1)
                        .body(ByteStream::from(buf))
                        .send()
                        .await
                        .map_err(|e| remote_error("S3", "UploadPart", e))?;
                    Ok(CompletedPart::builder().part_number(i as i32 + 1).set_e_tag(part.e_tag).build())
                }
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await;
        let result = match uploaded {
            Ok(parts) => {
                let completed = s3
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(&upload_id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                    .send()
                    .await;
                match completed {
                    Ok(_) => Ok(()),
                    // A retried CompleteMultipartUpload whose first attempt took effect (only
                    // its response was lost) finds the upload gone: the object is there, whole.
                    Err(e)
                        if e.as_service_error().and_then(|s| s.code()) == Some("NoSuchUpload")
                            && self.completed_earlier(full, size).await =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(remote_error("S3", "CompleteMultipartUpload", e)),
                }
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Nothing half-written stays behind (and no parts are billed).
            let _ = s3.abort_multipart_upload().bucket(&self.bucket).key(full).upload_id(&upload_id).send().await;
        }
        result
    }
}

fn is_not_found<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(e: &E) -> bool {
    matches!(e.code(), Some("NoSuchKey") | Some("NotFound") | Some("404"))
}

impl BlobStore for S3BlobStore {
    fn with_canned_acl(&self, acl: &str) -> Option<Arc<dyn BlobStore>> {
        Some(Arc::new(S3BlobStore { acl: Some(ObjectCannedAcl::from(acl)), ..self.clone() }))
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let full = self.full_key(key)?;
        self.aws.block_on(self.put_object(&full, ByteStream::from(data.to_vec())))
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let full = self.full_key(key)?;
        let size =
            std::fs::metadata(path).map_err(|source| PortError::Io { path: path.display().to_string(), source })?.len();
        self.aws.block_on(async {
            if size > MULTIPART_THRESHOLD {
                return self.put_multipart(&full, path, size).await;
            }
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| PortError::Other(format!("reading '{}': {e}", path.display())))?;
            self.put_object(&full, body).await
        })
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.get_maybe_range(key, None)
    }

    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.get_maybe_range(key, Some(format!("bytes={start}-{}", start + len - 1)))
    }

    fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let full = self.full_key(key)?;
        self.aws.block_on(async {
            match self.aws.s3().head_object().bucket(&self.bucket).key(&full).send().await {
                Ok(h) => Ok(Some(ObjectMeta { key: key.to_string(), size: h.content_length().unwrap_or(0) as u64 })),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
                Err(e) => Err(remote_error("S3", "HeadObject", e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        self.aws.block_on(async {
            let mut pages =
                self.aws.s3().list_objects_v2().bucket(&self.bucket).prefix(&full_prefix).into_paginator().send();
            let mut keys = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| remote_error("S3", "ListObjectsV2", e))?;
                for o in page.contents() {
                    if let Some(k) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                        keys.push(k.to_string());
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        self.aws.block_on(async {
            self.aws
                .s3()
                .delete_object()
                .bucket(&self.bucket)
                .key(&full)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| remote_error("S3", "DeleteObject", e))
        })
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }

    fn gdal_path(&self, key: &str) -> String {
        format!("/vsis3/{}/{}{key}", self.bucket, self.prefix)
    }
}

impl S3BlobStore {
    /// GetObject, whole or a range. The body is read after the SDK's retry loop has
    /// returned, so a body cut short (a dropped connection mid-transfer) is retried here.
    fn get_maybe_range(&self, key: &str, range: Option<String>) -> Result<Vec<u8>> {
        let full = self.full_key(key)?;
        self.aws.block_on(async {
            let mut attempt = 1;
            loop {
                let req = self.aws.s3().get_object().bucket(&self.bucket).key(&full).set_range(range.clone());
                let out = match req.send().await {
                    Ok(o) => o,
                    Err(e) if e.as_service_error().is_some_and(is_not_found) => {
                        return Err(PortError::NotFound(self.url(key)))
                    }
                    Err(e) => return Err(remote_error("S3", "GetObject", e)),
                };
                let expected = out.content_length();
                let why = match out.body.collect().await.map(|b| b.into_bytes()) {
                    Ok(b) if expected.is_none_or(|n| n as usize == b.len()) => return Ok(b.to_vec()),
                    Ok(b) => format!("got {} of {} bytes", b.len(), expected.unwrap_or_default()),
                    Err(e) => e.to_string(),
                };
                if attempt >= BODY_ATTEMPTS {
                    return Err(PortError::Remote {
                        service: "S3".into(),
                        op: "GetObject".into(),
                        why: format!("reading the body of {} ({attempt} attempts): {why}", self.url(key)),
                        transient: true,
                    });
                }
                tracing::warn!(object = %self.url(key), attempt, why = %why, "S3 object body cut short; reading it again");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                attempt += 1;
            }
        })
    }
}
