//! The clients a service (or a stand-alone script) talks to others through: the
//! [`Messenger`](messenger::Messenger), failed-message operations and the registry client.

pub(crate) mod failed;
pub(crate) mod messenger;
pub(crate) mod registry;
