//! Modbus TCP: the protocol's registration ([`protocol`]: its name `modbus_tcp`, endpoint check and
//! device), the point map ([`config`]), how registers become values ([`decode`]), which requests read a
//! map ([`plan`]), and the polling client ([`client`]).

pub mod client;
pub mod config;
pub mod decode;
pub mod plan;
pub mod protocol;

pub use client::ModbusDevice;
pub use config::{DataType, ModbusPoint, Order, RegisterType};
pub use protocol::ModbusTcp;
