//! The worker Lambda function (logic: `stratus_serverless::worker`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stratus_serverless::runtime::serve(stratus_serverless::worker::handler).await
}
