//! One AWS connection per process: the SDK configuration (standard environment, profile
//! and credential chain, plus an explicit endpoint override for local servers) and the
//! tokio runtime the blocking port adapters run their calls on.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use stratus_ports::PortError;

/// Environment variable naming an endpoint for every service (a local AWS-protocol server
/// such as moto). The SDK's own `AWS_ENDPOINT_URL` is honoured too.
pub const ENDPOINT_ENV: &str = "STRATUS_AWS_ENDPOINT";

pub struct Aws {
    rt: tokio::runtime::Runtime,
    sdk: aws_config::SdkConfig,
    endpoint: Option<String>,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws").field("region", &self.sdk.region()).field("endpoint", &self.endpoint).finish()
    }
}

static SHARED: OnceLock<Arc<Aws>> = OnceLock::new();

impl Aws {
    /// The process-wide connection, configured from the environment on first use.
    pub fn shared() -> Result<Arc<Aws>, PortError> {
        if let Some(a) = SHARED.get() {
            return Ok(a.clone());
        }
        let endpoint = std::env::var(ENDPOINT_ENV).ok().filter(|s| !s.is_empty());
        let aws = Arc::new(Aws::connect(endpoint)?);
        Ok(SHARED.get_or_init(|| aws).clone())
    }

    /// A connection with an explicit endpoint (None: the standard AWS endpoints).
    pub fn connect(endpoint: Option<String>) -> Result<Aws, PortError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stratus-aws")
            .enable_all()
            .build()
            .map_err(|e| PortError::Other(format!("could not start the AWS client runtime: {e}")))?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(url) = &endpoint {
            loader = loader.endpoint_url(url);
        }
        let sdk = rt.block_on(loader.load());
        if sdk.region().is_none() {
            return Err(PortError::Other(
                "no AWS region configured: set AWS_REGION (or a profile with a region)".into(),
            ));
        }
        // Local servers (and endpoint overrides in general) address buckets by path.
        let s3_conf = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(endpoint.is_some()).build();
        Ok(Aws {
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            rt,
            sdk,
            endpoint,
        })
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }
    pub fn region(&self) -> String {
        self.sdk.region().map(|r| r.to_string()).unwrap_or_default()
    }

    /// Run an SDK future to completion from blocking code (the ports are synchronous).
    /// Callers inside an async runtime (a Lambda handler) must call the ports from
    /// `tokio::task::spawn_blocking`, where blocking on this runtime is allowed.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// GDAL configuration options that make `/vsis3/` reach the same endpoint as the SDK
    /// (credentials come from the standard environment in both).
    pub fn gdal_options(&self) -> Vec<(String, String)> {
        let mut out = vec![("AWS_REGION".to_string(), self.region())];
        if let Some(url) = &self.endpoint {
            let https = url.starts_with("https://");
            let host = url.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
            out.push(("AWS_S3_ENDPOINT".into(), host.into()));
            out.push(("AWS_HTTPS".into(), if https { "YES" } else { "NO" }.into()));
            out.push(("AWS_VIRTUAL_HOSTING".into(), "FALSE".into()));
        }
        out
    }
}

/// A service error as a port error, with the SDK's full context and whether it is worth
/// retrying.
pub(crate) fn remote_error<E, R>(
    service: &str,
    op: &str,
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> PortError
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code == "SlowDown"
                || code == "RequestLimitExceeded"
                || code == "ProvisionedThroughputExceededException"
                || code == "InternalError"
                || code == "ServiceUnavailable"
        }
        _ => false,
    };
    let why = match &err {
        SdkError::ServiceError(e) => {
            let m = e.err().meta();
            format!("{}: {}", m.code().unwrap_or("error"), m.message().unwrap_or("(no message)"))
        }
        other => format!("{}", aws_smithy_types::error::display::DisplayErrorContext(other)),
    };
    PortError::Remote { service: service.into(), op: op.into(), why, transient }
}
