//! One AWS connection per process: the SDK configuration (standard environment, profile
//! and credential chain, plus an explicit endpoint override for local servers) and the
//! tokio runtime the blocking port adapters run their calls on.
//!
//! Why a runtime of its own when the Lambda functions already run in one: the ports are
//! synchronous (the engine is threads and rayon, and the CLI has no runtime at all), so
//! each adapter call blocks on this runtime (two threads, SDK I/O only). In a function,
//! handlers run their work in `spawn_blocking` (`stratus_serverless::blocking`), off the
//! Lambda runtime's threads, where blocking on this second runtime is allowed; the Lambda
//! runtime only carries the invocation loop. The two never share tasks.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use stratus_ports::PortError;

/// Environment variable naming an endpoint for every service (a local AWS-protocol server
/// such as moto). The SDK's own `AWS_ENDPOINT_URL` is honoured too.
pub const ENDPOINT_ENV: &str = "STRATUS_AWS_ENDPOINT";
/// Attempts per AWS request, counting the first (default 5: the SDK's own 3 leaves a
/// one-in-a-few-thousand chance of failing a request through three transient faults).
pub const MAX_ATTEMPTS_ENV: &str = "STRATUS_AWS_MAX_ATTEMPTS";
/// Seconds one attempt of an AWS request may take before it is abandoned and retried
/// (default 120: a stalled connection must not hang a worker until Lambda kills it).
pub const ATTEMPT_TIMEOUT_ENV: &str = "STRATUS_AWS_ATTEMPT_TIMEOUT_S";

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
        let attempts = env_number(MAX_ATTEMPTS_ENV, 5)?;
        let attempt_timeout = env_number(ATTEMPT_TIMEOUT_ENV, 120)?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts.max(1) as u32))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .operation_attempt_timeout(std::time::Duration::from_secs(attempt_timeout.max(1)))
                    .build(),
            );
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
        let s3_conf =
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(endpoint.is_some()).interceptor(RetryLog).build();
        let sqs_conf = aws_sdk_sqs::config::Builder::from(&sdk).interceptor(RetryLog).build();
        let dynamodb_conf = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(RetryLog).build();
        Ok(Aws {
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            sqs: aws_sdk_sqs::Client::from_conf(sqs_conf),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb_conf),
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

fn env_number(name: &str, default: u64) -> Result<u64, PortError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            PortError::Other(format!("{name}={v:?} is not a whole number: unset it or give e.g. {default}"))
        }),
        _ => Ok(default),
    }
}

/// Logs every failed attempt the SDK is about to retry (server errors, throttling,
/// timeouts, broken connections), so that retries show in the logs, not only in latency.
#[derive(Debug)]
struct RetryLog;

impl aws_smithy_runtime_api::client::interceptors::Intercept for RetryLog {
    fn name(&self) -> &'static str {
        "StratusRetryLog"
    }

    fn read_after_attempt(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_smithy_runtime_api::client::orchestrator::Metadata;
        use aws_smithy_runtime_api::client::retries::RequestAttempts;
        let status = context.response().map(|r| r.status().as_u16());
        let failed = match (status, context.output_or_error()) {
            (Some(code), _) if code >= 500 || code == 429 => Some(format!("HTTP {code}")),
            (None, Some(Err(e))) => Some(format!("{}", aws_smithy_types::error::display::DisplayErrorContext(e))),
            _ => None,
        };
        if let Some(why) = failed {
            let attempt = cfg.load::<RequestAttempts>().map(|a| a.attempts()).unwrap_or(1);
            let (service, op) = cfg.load::<Metadata>().map(|m| (m.service(), m.name())).unwrap_or(("AWS", "request"));
            tracing::warn!(service, op, attempt, why = %why, "AWS request attempt failed; retrying if attempts remain");
        }
        Ok(())
    }
}

/// A service error as a port error, with the SDK's full context and whether it is worth
/// retrying.
pub fn remote_error<E, R>(
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
