//! A Modbus point: where a value lives on the device and how to turn its registers into a number.

use serde::{Deserialize, Serialize};

use crate::source::{FieldError, Point};

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterType {
    /// Read/write single bits (function 1).
    Coil,
    /// Read-only single bits (function 2).
    DiscreteInput,
    /// Read/write 16-bit registers (function 3).
    Holding,
    /// Read-only 16-bit registers (function 4).
    Input,
}

impl RegisterType {
    /// True for the bit tables (coils and discrete inputs).
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterType::Coil | RegisterType::DiscreteInput)
    }

    /// Most items one request may read (Modbus application protocol limits).
    pub fn max_per_request(self) -> u16 {
        if self.is_bit() {
            2000
        } else {
            125
        }
    }

    /// Name for messages.
    pub fn label(self) -> &'static str {
        match self {
            RegisterType::Coil => "coils",
            RegisterType::DiscreteInput => "discrete inputs",
            RegisterType::Holding => "holding registers",
            RegisterType::Input => "input registers",
        }
    }
}

/// How a point's registers encode its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// One bit of a coil or discrete input: 0 or 1.
    Bool,
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single precision.
    F32,
    /// Four registers, IEEE 754 double precision.
    F64,
}

impl DataType {
    /// Registers (or bits, for `bool`) the value spans.
    pub fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::F64 => 4,
        }
    }
}

/// Byte or word order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Most significant first (the Modbus convention).
    #[default]
    Big,
    /// Least significant first.
    Little,
}

/// One value on a Modbus device and the (machine, metric) it feeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusPoint {
    /// Machine the value belongs to.
    pub machine: String,
    /// Metric name.
    pub metric: String,
    /// Modbus unit (slave) id, 0 to 255; 1 when absent.
    #[serde(default = "default_unit")]
    pub unit_id: u8,
    /// Data table.
    pub register: RegisterType,
    /// Zero-based address of the first register or bit.
    pub address: u16,
    /// Encoding of the value.
    pub data_type: DataType,
    /// Order of the bytes within each register.
    #[serde(default)]
    pub byte_order: Order,
    /// Order of the registers of a multi-register value.
    #[serde(default)]
    pub word_order: Order,
    /// The reading is `raw * scale + offset`.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling.
    #[serde(default)]
    pub offset: f64,
}

fn default_unit() -> u8 {
    1
}

fn default_scale() -> f64 {
    1.0
}

impl Point for ModbusPoint {
    fn target(&self) -> (&str, &str) {
        (&self.machine, &self.metric)
    }

    fn check(&self, field: &str, errors: &mut Vec<FieldError>) {
        let bad = |name: &str, reason: String| FieldError::new(format!("{field}.{name}"), reason);
        match (self.register.is_bit(), self.data_type) {
            (true, DataType::Bool) | (false, DataType::U16 | DataType::I16) => {}
            (false, DataType::U32 | DataType::I32 | DataType::F32 | DataType::F64) => {}
            (true, other) => errors.push(bad(
                "data_type",
                format!(
                    "{} hold single bits: use bool, not {other:?}",
                    self.register.label()
                )
                .to_lowercase(),
            )),
            (false, DataType::Bool) => errors.push(bad(
                "data_type",
                format!(
                    "{} hold 16-bit words: use u16, i16, u32, i32, f32 or f64",
                    self.register.label()
                ),
            )),
        }
        if u32::from(self.address) + u32::from(self.data_type.width()) > 65_536 {
            errors.push(bad(
                "address",
                format!(
                    "a {:?} at {} runs past the last address 65535",
                    self.data_type, self.address
                )
                .to_lowercase(),
            ));
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            errors.push(bad("scale", "must be a finite number other than 0".into()));
        }
        if !self.offset.is_finite() {
            errors.push(bad("offset", "must be a finite number".into()));
        }
        if self.data_type.width() == 1
            && (self.word_order != Order::Big
                || (self.data_type == DataType::Bool && self.byte_order != Order::Big))
        {
            let which = if self.word_order != Order::Big {
                "word_order"
            } else {
                "byte_order"
            };
            errors.push(bad(
                which,
                format!("has no meaning for {:?}", self.data_type).to_lowercase(),
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(register: RegisterType, address: u16, data_type: DataType) -> ModbusPoint {
        ModbusPoint {
            machine: "m".into(),
            metric: "t".into(),
            unit_id: 1,
            register,
            address,
            data_type,
            byte_order: Order::Big,
            word_order: Order::Big,
            scale: 1.0,
            offset: 0.0,
        }
    }

    fn problems(p: &ModbusPoint) -> Vec<String> {
        let mut errors = Vec::new();
        p.check("points[0]", &mut errors);
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn accepts_matching_tables_and_types() {
        assert!(problems(&point(RegisterType::Coil, 0, DataType::Bool)).is_empty());
        assert!(problems(&point(RegisterType::Input, 65_532, DataType::F64)).is_empty());
        assert!(problems(&point(RegisterType::Holding, 65_535, DataType::I16)).is_empty());
    }

    #[test]
    fn explains_mismatches() {
        let e = problems(&point(RegisterType::DiscreteInput, 0, DataType::U16));
        assert_eq!(
            e,
            ["points[0].data_type: discrete inputs hold single bits: use bool, not u16"]
        );
        let e = problems(&point(RegisterType::Holding, 0, DataType::Bool));
        assert!(e[0].starts_with("points[0].data_type: holding registers hold 16-bit words"));
        let e = problems(&point(RegisterType::Holding, 65_535, DataType::F32));
        assert_eq!(
            e,
            ["points[0].address: a f32 at 65535 runs past the last address 65535"]
        );
        let mut p = point(RegisterType::Holding, 0, DataType::U16);
        p.scale = 0.0;
        p.word_order = Order::Little;
        let e = problems(&p);
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn defaults_unit_orders_scale_and_offset() {
        let p: ModbusPoint = serde_json::from_str(
            r#"{"machine":"m","metric":"t","register":"input","address":7,"data_type":"i32"}"#,
        )
        .unwrap();
        assert_eq!(
            (p.unit_id, p.byte_order, p.word_order, p.scale, p.offset),
            (1, Order::Big, Order::Big, 1.0, 0.0)
        );
        let e = serde_json::from_str::<ModbusPoint>(
            r#"{"machine":"m","metric":"t","register":"holdings","address":7,"data_type":"i32"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant `holdings`"), "{e}");
    }
}
