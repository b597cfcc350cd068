//! Helpers that map Avro values onto Rust types, shared by the topic modules.

use apache_avro::types::Value;
use uuid::Uuid;

use crate::error::CodecError;

/// A record's fields by name, taken out one at a time.
pub(crate) struct Fields(Vec<(String, Value)>);

impl Fields {
    /// The fields of a record value.
    pub(crate) fn of(value: Value) -> Result<Self, CodecError> {
        match value {
            Value::Record(fields) => Ok(Self(fields)),
            other => Err(shape("record", &other)),
        }
    }

    /// Removes and returns the field `name`.
    pub(crate) fn take(&mut self, name: &str) -> Result<Value, CodecError> {
        let i = self
            .0
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| CodecError::Shape(format!("missing field {name}")))?;
        Ok(self.0.swap_remove(i).1)
    }

    pub(crate) fn string(&mut self, name: &str) -> Result<String, CodecError> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            other => Err(shape(name, &other)),
        }
    }

    /// A long, or a timestamp in milliseconds.
    pub(crate) fn long(&mut self, name: &str) -> Result<i64, CodecError> {
        match self.take(name)? {
            Value::TimestampMillis(v) | Value::Long(v) => Ok(v),
            other => Err(shape(name, &other)),
        }
    }

    pub(crate) fn int(&mut self, name: &str) -> Result<i32, CodecError> {
        match self.take(name)? {
            Value::Int(v) => Ok(v),
            other => Err(shape(name, &other)),
        }
    }

    pub(crate) fn double(&mut self, name: &str) -> Result<f64, CodecError> {
        match self.take(name)? {
            Value::Double(v) => Ok(v),
            other => Err(shape(name, &other)),
        }
    }

    pub(crate) fn uuid(&mut self, name: &str) -> Result<Uuid, CodecError> {
        match self.take(name)? {
            Value::Uuid(u) => Ok(u),
            Value::String(s) => Uuid::parse_str(&s).map_err(|e| CodecError::Shape(e.to_string())),
            other => Err(shape(name, &other)),
        }
    }

    pub(crate) fn boolean(&mut self, name: &str) -> Result<bool, CodecError> {
        match self.take(name)? {
            Value::Boolean(v) => Ok(v),
            other => Err(shape(name, &other)),
        }
    }

    /// A long holding an unsigned count (written by [`unsigned`]).
    pub(crate) fn unsigned(&mut self, name: &str) -> Result<u64, CodecError> {
        // The inverse of `unsigned`: a bit-for-bit reinterpretation.
        self.long(name).map(|v| v as u64)
    }

    /// A long holding a `u32`.
    pub(crate) fn u32(&mut self, name: &str) -> Result<u32, CodecError> {
        let v = self.long(name)?;
        u32::try_from(v)
            .map_err(|_| CodecError::Shape(format!("field {name}: {v} is out of range")))
    }

    /// The items of an array field.
    pub(crate) fn array(&mut self, name: &str) -> Result<Vec<Value>, CodecError> {
        match self.take(name)? {
            Value::Array(items) => Ok(items),
            other => Err(shape(name, &other)),
        }
    }

    /// The value of an optional (`["null", T]`) field, `None` when null or absent from the record.
    pub(crate) fn optional(&mut self, name: &str) -> Result<Option<Value>, CodecError> {
        if !self.0.iter().any(|(n, _)| n == name) {
            return Ok(None);
        }
        match self.take(name)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                v => Ok(Some(v)),
            },
            Value::Null => Ok(None),
            other => Ok(Some(other)),
        }
    }

    /// The symbol of an enum field.
    pub(crate) fn symbol(&mut self, name: &str) -> Result<String, CodecError> {
        match self.take(name)? {
            Value::Enum(_, s) => Ok(s),
            other => Err(shape(name, &other)),
        }
    }
}

/// An error for a field whose value has the wrong shape.
pub(crate) fn shape(field: &str, got: &Value) -> CodecError {
    CodecError::Shape(format!("field {field}: unexpected {got:?}"))
}

/// An optional (`["null", T]`) field's value.
pub(crate) fn optional(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

/// An unsigned count as an Avro long. Counts never reach 2^63; were one to, it would come back intact all
/// the same, as the reinterpretation is undone by [`Fields::unsigned`].
pub(crate) fn unsigned(v: u64) -> Value {
    Value::Long(v as i64)
}

/// A record value from its fields, in schema order.
pub(crate) fn record<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Record(fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect())
}

/// The Avro enum value of `x` in a (variant, symbol) table listed in schema order.
pub(crate) fn enum_symbol<T: PartialEq + Copy>(table: &[(T, &str)], x: T) -> Value {
    let i = table.iter().position(|(v, _)| *v == x).unwrap_or_default();
    Value::Enum(
        i as u32,
        table.get(i).map(|(_, s)| *s).unwrap_or_default().to_owned(),
    )
}

/// The variant named `symbol` in a (variant, symbol) table.
pub(crate) fn parse_symbol<T: Copy>(table: &[(T, &str)], symbol: &str) -> Result<T, CodecError> {
    table
        .iter()
        .find(|(_, s)| *s == symbol)
        .map(|(v, _)| *v)
        .ok_or_else(|| CodecError::Shape(format!("unknown symbol {symbol}")))
}
