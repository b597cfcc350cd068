//! OPC-UA: the point map ([`config`]) and the client ([`client`]).

pub mod client;
pub mod config;

pub use client::OpcUaDevice;
pub use config::OpcUaPoint;
