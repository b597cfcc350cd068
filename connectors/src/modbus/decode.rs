//! Registers to numbers: byte order within a register, word order across registers, then scale and
//! offset.

use super::config::{DataType, ModbusPoint, Order};

/// The raw value of `data_type` held in `words` (exactly `data_type.width()` registers).
///
/// Returns `None` when `words` has the wrong length or the type is `bool`.
pub fn raw_from_words(
    words: &[u16],
    data_type: DataType,
    byte_order: Order,
    word_order: Order,
) -> Option<f64> {
    if data_type == DataType::Bool || words.len() != usize::from(data_type.width()) {
        return None;
    }
    // Big-endian bytes of the value: the most significant register first, each register's high byte first.
    let mut bytes = [0u8; 8];
    let n = words.len();
    for i in 0..n {
        let word = match word_order {
            Order::Big => words[i],
            Order::Little => words[n - 1 - i],
        };
        let pair = match byte_order {
            Order::Big => word.to_be_bytes(),
            Order::Little => word.to_le_bytes(),
        };
        bytes[2 * i] = pair[0];
        bytes[2 * i + 1] = pair[1];
    }
    let b2 = [bytes[0], bytes[1]];
    let b4 = [bytes[0], bytes[1], bytes[2], bytes[3]];
    Some(match data_type {
        DataType::U16 => f64::from(u16::from_be_bytes(b2)),
        DataType::I16 => f64::from(i16::from_be_bytes(b2)),
        DataType::U32 => f64::from(u32::from_be_bytes(b4)),
        DataType::I32 => f64::from(i32::from_be_bytes(b4)),
        DataType::F32 => f64::from(f32::from_be_bytes(b4)),
        DataType::F64 => f64::from_be_bytes(bytes),
        DataType::Bool => return None,
    })
}

/// The reading of `point` from its registers: `raw * scale + offset`.
pub fn value_from_words(point: &ModbusPoint, words: &[u16]) -> Option<f64> {
    raw_from_words(words, point.data_type, point.byte_order, point.word_order)
        .map(|raw| raw * point.scale + point.offset)
}

/// The reading of a bit point: 0 or 1, then scale and offset.
pub fn value_from_bit(point: &ModbusPoint, bit: bool) -> f64 {
    f64::from(u8::from(bit)) * point.scale + point.offset
}

/// The registers that hold `value` as `data_type` (the inverse of [`raw_from_words`]; for tests and
/// simulators).
pub fn words_from_raw(
    value: f64,
    data_type: DataType,
    byte_order: Order,
    word_order: Order,
) -> Vec<u16> {
    let be: Vec<u8> = match data_type {
        DataType::Bool | DataType::U16 => (value as u16).to_be_bytes().to_vec(),
        DataType::I16 => (value as i16).to_be_bytes().to_vec(),
        DataType::U32 => (value as u32).to_be_bytes().to_vec(),
        DataType::I32 => (value as i32).to_be_bytes().to_vec(),
        DataType::F32 => (value as f32).to_be_bytes().to_vec(),
        DataType::F64 => value.to_be_bytes().to_vec(),
    };
    let mut words: Vec<u16> = be
        .chunks(2)
        .map(|c| {
            let pair = [c[0], c.get(1).copied().unwrap_or(0)];
            match byte_order {
                Order::Big => u16::from_be_bytes(pair),
                Order::Little => u16::from_le_bytes(pair),
            }
        })
        .collect();
    if word_order == Order::Little {
        words.reverse();
    }
    words
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use DataType::*;
    use Order::*;

    #[test]
    fn decodes_sixteen_bit_values() {
        assert_eq!(raw_from_words(&[0xFFFE], U16, Big, Big), Some(65534.0));
        assert_eq!(raw_from_words(&[0xFFFE], I16, Big, Big), Some(-2.0));
        // Little byte order swaps the two bytes of the register.
        assert_eq!(raw_from_words(&[0x0100], U16, Little, Big), Some(1.0));
    }

    #[test]
    fn decodes_every_order_of_a_float() {
        // 123.456f32 = 0x42F6E979
        let cases = [
            ([0x42F6, 0xE979], Big, Big),
            ([0xE979, 0x42F6], Big, Little),
            ([0xF642, 0x79E9], Little, Big),
            ([0x79E9, 0xF642], Little, Little),
        ];
        for (words, bytes, word) in cases {
            let v = raw_from_words(&words, F32, bytes, word).expect("two words");
            assert!((v - 123.456).abs() < 1e-4, "{bytes:?}/{word:?}: {v}");
        }
    }

    #[test]
    fn decodes_thirty_two_and_sixty_four_bit_values() {
        assert_eq!(raw_from_words(&[0xFFFF, 0xFFFF], I32, Big, Big), Some(-1.0));
        assert_eq!(
            raw_from_words(&[0x0001, 0x0000], U32, Big, Big),
            Some(65536.0)
        );
        assert_eq!(
            raw_from_words(&[0x0000, 0x0001], U32, Big, Little),
            Some(65536.0)
        );
        let words = words_from_raw(-1234.5678, F64, Big, Little);
        assert_eq!(words.len(), 4);
        assert_eq!(raw_from_words(&words, F64, Big, Little), Some(-1234.5678));
        assert_eq!(raw_from_words(&[1, 2], F64, Big, Big), None);
    }

    #[test]
    fn encoding_round_trips_for_every_type_and_order() {
        for (ty, v) in [
            (U16, 60000.0),
            (I16, -300.0),
            (U32, 4e9),
            (I32, -2e9),
            (F32, 0.5),
            (F64, 1e-300),
        ] {
            for bytes in [Big, Little] {
                for word in [Big, Little] {
                    let words = words_from_raw(v, ty, bytes, word);
                    assert_eq!(
                        raw_from_words(&words, ty, bytes, word),
                        Some(v),
                        "{ty:?} {bytes:?} {word:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn applies_scale_then_offset() {
        let point = ModbusPoint {
            machine: "m".into(),
            metric: "t".into(),
            unit_id: 1,
            register: super::super::RegisterType::Holding,
            address: 0,
            data_type: I16,
            byte_order: Big,
            word_order: Big,
            scale: 0.1,
            offset: -40.0,
        };
        let v = value_from_words(&point, &[653]).expect("one word");
        assert!((v - 25.3).abs() < 1e-9, "{v}");
        assert_eq!(value_from_bit(&point, true), 0.1 - 40.0);
    }
}
