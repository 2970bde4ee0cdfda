#![doc = include_str!("../README.md")]

use kontiki_generated::api_gateway::api_gateway::{ApiGateway, ApiGatewayServer, ComputeError};
use kontiki_generated::rpc_service::rpc_service::{RpcExampleClientError, RpcServiceClient};
use kontiki_rt::{Context, RpcError, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str = "Example Kontiki service: a gateway in front of rpc-service.";

/// The peer key under `kontiki.peers` that names the rpc-service to call.
pub const PEER: &str = "rpc_service";

/// Forwards `compute(feature)` to `rpc-service.rpc_example(feature)`.
#[derive(Debug, Default)]
pub struct Gateway;

impl ApiGateway for Gateway {
    async fn compute(&self, ctx: Context, feature: String) -> Result<String, ComputeError> {
        // `kontiki.peers.rpc_service` renames the upstream (default: its contract name).
        let mut client = RpcServiceClient::new(ctx.messenger().clone());
        if let Some(name) = ctx.container().settings().peers.get(PEER) {
            client = client.with_service_name(name.as_str());
        }
        let upstream = client.service_name().to_owned();
        match client.rpc_example(feature.as_str()).await {
            Ok(result) => {
                tracing::info!("compute({feature:?}) -> {upstream}.rpc_example -> {result:?}");
                Ok(result)
            }
            Err(RpcError::Client {
                error: RpcExampleClientError::UserInputError { message },
                ..
            }) => {
                tracing::info!(
                    "compute({feature:?}) -> {upstream}.rpc_example -> USER_INPUT_ERROR: {message}"
                );
                Err(ComputeError::UserInputError { message })
            }
            Err(other) => Err(ComputeError::internal(format!(
                "{upstream}.rpc_example failed: {other}"
            ))),
        }
    }
}

/// The api-gateway service, ready for [`kontiki_rt::cli::run`] or [`Service::start`].
pub fn service() -> kontiki_rt::Result<Service> {
    ApiGatewayServer::new(Gateway).service_builder().build()
}
