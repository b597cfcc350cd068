//! OPC-UA: the protocol's registration ([`protocol`]: its name `opcua`, endpoint check, the `opcua`
//! settings section and the device), the settings and point map ([`config`]), and the client
//! ([`client`], periodic reads and subscriptions).

pub mod client;
pub mod config;
pub mod protocol;

pub use client::OpcUaDevice;
pub use config::{OpcUaAuth, OpcUaPoint, OpcUaSettings};
pub use protocol::OpcUa;
