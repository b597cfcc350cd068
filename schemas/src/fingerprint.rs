//! Schema fingerprints as the Avro specification defines them: the CRC-64-AVRO (Rabin) digest of the
//! schema's Parsing Canonical Form.
//!
//! apache-avro 0.21's own `Schema::canonical_form` keeps a primitive with a logical type as
//! `{"type":"string"}` where the specification wants `"string"` (every `uuid` and `timestamp-millis` of
//! ours), so its fingerprints differ from every other implementation's (Java's
//! `SchemaNormalization.parsingFingerprint64`, fastavro, ...). [`parsing_canonical_form`] follows the
//! specification instead, and the crate's Rabin digest, which is right (little-endian, as single-object
//! encoding wants it), hashes it. [`legacy_fingerprint`] is the crate's, which the platform wrote before.

use std::collections::HashSet;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use digest::Digest;
use serde_json::Value as Json;

use crate::error::CodecError;

/// The CRC-64-AVRO fingerprint of the schema `text`'s Parsing Canonical Form, little-endian as
/// single-object encoding wants it (what Java's `SchemaNormalization.parsingFingerprint64` gives).
pub fn fingerprint(text: &str) -> Result<[u8; 8], CodecError> {
    let digest = Rabin::digest(parsing_canonical_form(text)?.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    Ok(out)
}

/// The fingerprint the platform wrote before it followed the specification: the crate's Rabin digest of
/// the crate's canonical form. Only for reading old messages.
pub fn legacy_fingerprint(schema: &Schema) -> [u8; 8] {
    let fp = schema.fingerprint::<Rabin>();
    let mut out = [0u8; 8];
    out.copy_from_slice(&fp.bytes[..8]);
    out
}

/// The Parsing Canonical Form of the schema `text`, as the Avro specification defines it: primitives in
/// their simple form, full names, only the attributes that matter for parsing (`name`, `type`, `fields`,
/// `symbols`, `items`, `values`, `size`, in that order), no white space. Logical types are dropped, leaving
/// their underlying type.
pub fn parsing_canonical_form(text: &str) -> Result<String, CodecError> {
    let json: Json =
        serde_json::from_str(text).map_err(|e| CodecError::InvalidSchema(e.to_string()))?;
    let mut out = String::new();
    Canonical::default().write(&json, None, &mut out)?;
    Ok(out)
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The named types defined so far: a second occurrence is written as its full name only.
#[derive(Default)]
struct Canonical {
    defined: HashSet<String>,
}

impl Canonical {
    fn write(
        &mut self,
        schema: &Json,
        space: Option<&str>,
        out: &mut String,
    ) -> Result<(), CodecError> {
        match schema {
            Json::String(name) => {
                out.push_str(&quote(&self.reference(name, space)));
                Ok(())
            }
            Json::Array(branches) => {
                out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write(branch, space, out)?;
                }
                out.push(']');
                Ok(())
            }
            Json::Object(map) => match map.get("type") {
                Some(Json::String(t))
                    if matches!(t.as_str(), "record" | "error" | "enum" | "fixed") =>
                {
                    self.named(map, t, space, out)
                }
                Some(Json::String(t)) if t == "array" => {
                    out.push_str(r#"{"type":"array","items":"#);
                    self.write(attribute(map, "items")?, space, out)?;
                    out.push('}');
                    Ok(())
                }
                Some(Json::String(t)) if t == "map" => {
                    out.push_str(r#"{"type":"map","values":"#);
                    self.write(attribute(map, "values")?, space, out)?;
                    out.push('}');
                    Ok(())
                }
                // A primitive, with or without a logical type: its simple form.
                Some(inner) => self.write(inner, space, out),
                None => Err(invalid("an object without \"type\"")),
            },
            other => Err(invalid(&format!("unexpected {other}"))),
        }
    }

    /// A record, enum or fixed.
    fn named(
        &mut self,
        map: &serde_json::Map<String, Json>,
        kind: &str,
        space: Option<&str>,
        out: &mut String,
    ) -> Result<(), CodecError> {
        let name = attribute(map, "name")?
            .as_str()
            .ok_or_else(|| invalid("a name that is not a string"))?;
        let full = if name.contains('.') {
            name.to_owned()
        } else {
            match map.get("namespace").and_then(Json::as_str).or(space) {
                Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
                _ => name.to_owned(),
            }
        };
        if !self.defined.insert(full.clone()) {
            out.push_str(&quote(&full));
            return Ok(());
        }
        // Names inside take the namespace of this full name.
        let inner_space = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
        out.push_str(&format!(
            r#"{{"name":{},"type":{}"#,
            quote(&full),
            quote(kind)
        ));
        match kind {
            "enum" => {
                let symbols = attribute(map, "symbols")?
                    .as_array()
                    .ok_or_else(|| invalid("symbols that are not an array"))?;
                let symbols: Vec<String> = symbols
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .map(quote)
                            .ok_or_else(|| invalid("a symbol that is not a string"))
                    })
                    .collect::<Result<_, _>>()?;
                out.push_str(&format!(r#","symbols":[{}]"#, symbols.join(",")));
            }
            "fixed" => {
                let size = match attribute(map, "size")? {
                    Json::Number(n) => n.as_u64(),
                    Json::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| invalid("a size that is not a whole number"))?;
                out.push_str(&format!(r#","size":{size}"#));
            }
            _ => {
                let fields = attribute(map, "fields")?
                    .as_array()
                    .ok_or_else(|| invalid("fields that are not an array"))?;
                out.push_str(r#","fields":["#);
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let name = field
                        .get("name")
                        .and_then(Json::as_str)
                        .ok_or_else(|| invalid("a field without a name"))?;
                    let ty = field
                        .get("type")
                        .ok_or_else(|| invalid("a field without a type"))?;
                    out.push_str(&format!(r#"{{"name":{},"type":"#, quote(name)));
                    self.write(ty, inner_space.as_deref(), out)?;
                    out.push('}');
                }
                out.push(']');
            }
        }
        out.push('}');
        Ok(())
    }

    /// The full name a type reference stands for (primitives stay as they are).
    fn reference(&self, name: &str, space: Option<&str>) -> String {
        if PRIMITIVES.contains(&name) || name.contains('.') {
            return name.to_owned();
        }
        match space {
            Some(ns) => {
                let qualified = format!("{ns}.{name}");
                // A name defined without a namespace stays reachable from inside one.
                if !self.defined.contains(&qualified) && self.defined.contains(name) {
                    name.to_owned()
                } else {
                    qualified
                }
            }
            None => name.to_owned(),
        }
    }
}

fn attribute<'a>(
    map: &'a serde_json::Map<String, Json>,
    key: &str,
) -> Result<&'a Json, CodecError> {
    map.get(key)
        .ok_or_else(|| invalid(&format!("no \"{key}\"")))
}

fn invalid(what: &str) -> CodecError {
    CodecError::InvalidSchema(what.to_owned())
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    Json::String(s.to_owned()).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn fingerprints_are_the_specifications() {
        // What Java's SchemaNormalization.parsingFingerprint64 and fastavro give, in wire order.
        let cases = [
            (crate::alerts::HISTORY[0], "65216241ae07b30d"),
            (crate::readings::HISTORY[0], "ac3103a61efefa05"),
            (crate::readings::SCHEMA, "07d4c633c3361250"),
            (crate::rules::HISTORY[0], "a23043e7314fa1f2"),
            (crate::rules::HISTORY[1], "0cae93a78c20a96d"),
            (crate::detector_state::HISTORY[0], "f03aa747926a8407"),
            (crate::detector_state::HISTORY[1], "0243e045dbe40dfc"),
        ];
        for (schema, expected) in cases {
            assert_eq!(hex(&fingerprint(schema).unwrap()), expected);
        }
    }

    #[test]
    fn the_legacy_fingerprints_are_what_the_topics_carry_from_before_the_fix() {
        let alerts = Schema::parse_str(crate::alerts::HISTORY[0]).unwrap();
        let readings = Schema::parse_str(crate::readings::HISTORY[0]).unwrap();
        assert_eq!(hex(&legacy_fingerprint(&alerts)), "488d4d7f65cc2fad");
        assert_eq!(hex(&legacy_fingerprint(&readings)), "5ca622aad84d03f6");
    }

    /// Cases of the Avro project's `share/test/data/schema-tests.txt`: input, canonical form, fingerprint
    /// (the signed 64-bit value Java gives).
    #[test]
    fn canonical_forms_match_the_avro_projects_reference_cases() {
        let cases: &[(&str, &str, i64)] = &[
            (r#""null""#, r#""null""#, 7195948357588979594),
            (r#"{"type":"int"}"#, r#""int""#, 8247732601305521295),
            (
                r#"[ "int" , {"type":"boolean"} ]"#,
                r#"["int","boolean"]"#,
                5392556393470105090,
            ),
            (
                r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
                r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
                5916914534497305771,
            ),
            (
                r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
                r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
                -4616218487480524110,
            ),
            (
                r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},
                   {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
                   "type":"record", "name":"foo"}"#,
                r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
                -4860222112080293046,
            ),
            (
                r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
                r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
                -4448647247586288245,
            ),
            (
                r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
                r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
                -3064184465700546786,
            ),
            (
                r#"{ "items":{"type":"null"}, "type":"array"}"#,
                r#"{"type":"array","items":"null"}"#,
                -589620603366471059,
            ),
            (
                r#"{ "values":"string", "type":"map"}"#,
                r#"{"type":"map","values":"string"}"#,
                -8732877298790414990,
            ),
            (
                r#"{"name":"PigValue","type":"record",
                   "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
                r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
                -1759257747318642341,
            ),
        ];
        for (input, canonical, fp) in cases {
            assert_eq!(&parsing_canonical_form(input).unwrap(), canonical);
            assert_eq!(fingerprint(input).unwrap(), fp.to_le_bytes(), "{input}");
        }
    }

    #[test]
    fn logical_types_reduce_to_their_underlying_type_and_names_get_their_namespace() {
        let schema = r#"{"type": "record", "name": "R", "namespace": "a.b", "fields": [
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X"]}},
            {"name": "again", "type": "E"},
            {"name": "money", "type": {"type": "fixed", "name": "M", "size": 8, "logicalType": "decimal", "precision": 9}}
        ]}"#;
        assert_eq!(
            parsing_canonical_form(schema).unwrap(),
            concat!(
                r#"{"name":"a.b.R","type":"record","fields":[{"name":"id","type":"string"},"#,
                r#"{"name":"at","type":"long"},{"name":"e","type":{"name":"a.b.E","type":"enum","symbols":["X"]}},"#,
                r#"{"name":"again","type":"a.b.E"},{"name":"money","type":{"name":"a.b.M","type":"fixed","size":8}}]}"#
            )
        );
    }
}
