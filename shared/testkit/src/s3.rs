//! S3 helpers for the tests that run against moto.

use serde_json::{json, Value};
use std::path::Path;
use stratus_aws::S3BlobStore;
use stratus_ports::BlobStore;

/// Upload a directory tree under `prefix/` (relative STAC hrefs stay valid).
pub fn upload_dir(store: &S3BlobStore, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let key = format!("{prefix}/{}", p.file_name().unwrap().to_string_lossy());
        if p.is_dir() {
            upload_dir(store, &p, &key);
        } else {
            store.put_file(&key, &p).unwrap();
        }
    }
}

/// Synthetic scenes (4 dates) uploaded under `s3://{bucket}/inputs/`, and the text of a run
/// file planning them with `plugin` on a small grid, outputs under `s3://{bucket}/products`.
pub fn inputs_and_run_file(store: &S3BlobStore, bucket: &str, run_id: &str, plugin: &str, dir: &Path) -> String {
    let inputs = dir.join("inputs");
    stratus_synth::generate(&crate::small_scenes(4), &inputs, &|_, _| {}).unwrap();
    upload_dir(store, &inputs, "inputs");
    format!(
        "run_id: {run_id}\ninputs: ['s3://{bucket}/inputs/catalog.json']\ngrid: 'epsg:6933;240;100'\n\
         temporal_range: 2021--P1Y\nfrequency: annual\nplugin: {plugin}\nproduct: {{name: t_pq, version: 1.0.0}}\n\
         location: 's3://{bucket}/products'\nchunk_size: 64\n"
    )
}

/// The S3 event notification Lambda receives for a new object.
pub fn s3_notification(bucket: &str, key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T03:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "stratus-run-files",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key.replace(' ', "+"), "size": 512, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0055AED6DCD90281E5"}}
    }]})
}
