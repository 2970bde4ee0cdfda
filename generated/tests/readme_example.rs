//! The example of the repository's README, kept true: `idl/rpc_service.kontiki` implemented
//! from its generated trait and called through its generated client over RabbitMQ.

mod support;

use kontiki_generated::rpc_service::{
    RpcExampleClientError, RpcExampleError, RpcService, RpcServiceClient, RpcServiceServer,
};
use kontiki_rt::{Context, Messenger, RpcError};

struct Features;

impl RpcService for Features {
    async fn rpc_example(&self, _ctx: Context, feature: String) -> Result<String, RpcExampleError> {
        if feature == "bad_input" {
            return Err(RpcExampleError::user_input_error()); // "Invalid feature value"
        }
        Ok("ok".to_owned())
    }
}

#[tokio::test]
async fn the_readme_example_runs() {
    let name = support::unique("readme");
    let service = RpcServiceServer::new(Features)
        .service_builder()
        .build()
        .unwrap()
        .start(support::service_config(&name))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));

    let client = RpcServiceClient::new(Messenger::connect(support::amqp_url()).await.unwrap())
        .with_service_name(&name);
    assert_eq!(client.rpc_example("x").await.unwrap(), "ok");
    match client.rpc_example("bad_input").await {
        Err(RpcError::Client {
            error: RpcExampleClientError::UserInputError { message },
            ..
        }) => {
            assert_eq!(message, "Invalid feature value");
        }
        other => panic!("expected USER_INPUT_ERROR, got {other:?}"),
    }
    service.shutdown().await;
}
