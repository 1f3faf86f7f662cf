//! The AWS adapters of the ports: S3 blob store, SQS task queue, DynamoDB ledger, and the
//! shared client (endpoint override for local AWS-protocol servers such as moto).

pub mod client;
pub mod dynamo_ledger;
pub mod remote;
pub mod s3_blob;
pub mod sqs_queue;

pub use client::{remote_error, Aws, ENDPOINT_ENV};
pub use dynamo_ledger::DynamoLedger;
pub use remote::AwsRemote;
pub use s3_blob::{parse_s3_url, S3BlobStore};
pub use sqs_queue::SqsQueue;
