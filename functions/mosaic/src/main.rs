//! The mosaic Lambda function (logic: `stratus_serverless::mosaic`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stratus_serverless::runtime::serve(stratus_serverless::mosaic::handler).await
}
