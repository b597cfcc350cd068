//! Modbus TCP: the point map ([`config`]), how registers become values ([`decode`]), which requests
//! read a map ([`plan`]), and the polling client ([`client`]).

pub mod client;
pub mod config;
pub mod decode;
pub mod plan;

pub use client::ModbusDevice;
pub use config::{DataType, ModbusPoint, Order, RegisterType};
