//! The dispatcher Lambda function (logic: `stratus_serverless::dispatcher`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stratus_serverless::runtime::serve(stratus_serverless::dispatcher::handler).await
}
