//! `kontiki call` and `kontiki publish`, on kontiki-rt's stand-alone [`Messenger`].

use crate::args::header_map;
use crate::cli::{CallArgs, PublishArgs};
use crate::conn::Broker;
use crate::exit::Failure;
use crate::out;
use kontiki_rt::wire::RequestBody;
use kontiki_rt::{CallOptions, Messenger, PublishOptions};

/// Calls the method and prints its result as JSON.
pub(crate) async fn call(broker: &Broker, args: CallArgs) -> Result<(), Failure> {
    let mut options = CallOptions::default();
    options.headers = header_map(&args.headers);
    options.timeout = args.timeout;
    options.instance_id = args.instance;
    options.flow_id = args.flow_id;
    let body = RequestBody {
        args: args.args,
        kwargs: args.kwargs.unwrap_or_default(),
    };
    let m = broker.messenger().await?;
    let result = m
        .call_with(&args.service, &args.method, body, options)
        .await;
    m.close().await;
    let value = result.map_err(|e| Failure::from_rpc(&e))?;
    // A reader that went away (`| head -c0`) is no failure of the call.
    let _ = out::json(&value, args.pretty);
    Ok(())
}

/// Publishes the event and returns once the broker confirmed it.
pub(crate) async fn publish(broker: &Broker, args: PublishArgs) -> Result<(), Failure> {
    let mut options = PublishOptions::default();
    options.headers = header_map(&args.headers);
    options.flow_id = args.flow_id;
    options.mandatory = args.mandatory;
    let m: Messenger = broker.messenger().await?;
    let result = m.publish_with(&args.event, &args.payload, options).await;
    m.close().await;
    result.map_err(|e| Failure::from_error(&e))
}
