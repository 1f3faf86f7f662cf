//! What a handler can fail with, typed: the engine's and the ports' errors as they are,
//! and the handler's own (its environment, its event, its run file, its schedule). Every
//! error keeps its record in the queue (SQS delivers it again, then dead-letters it); the
//! Lambda runtime logs an invocation's error whole.

use stratus_engine::EngineError;
use stratus_ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum ServerlessError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Port(#[from] PortError),
    /// A setting the function's environment must name.
    #[error("{env} is not set: the function's environment must name it (see infra/)")]
    Unset { env: String },
    /// An event this function cannot read or does not take.
    #[error("{0}")]
    Event(String),
    /// The run file an event names.
    #[error("run file {url}: {why}")]
    RunFile { url: String, why: String },
    /// Planning from a source failed.
    #[error("{source_name}: {error}")]
    Plan {
        source_name: String,
        #[source]
        error: EngineError,
    },
    /// A scheduled run that cannot be planned as scheduled.
    #[error("{0}")]
    Schedule(String),
    /// The invocation's time ran out part-way; the retry continues.
    #[error("{0}")]
    Deadline(String),
}

pub type Result<T, E = ServerlessError> = std::result::Result<T, E>;
