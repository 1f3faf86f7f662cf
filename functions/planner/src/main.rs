//! The planner Lambda function (logic: `stratus_serverless::planner`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stratus_serverless::runtime::serve(stratus_serverless::planner::handler).await
}
