//! Source definitions read exactly as they did before protocols were registered: for every document in
//! `data/source_definitions.jsonl` (recorded from the code of that time), the same problems by field
//! path with the same messages, or the same stored and shown (redacted) definition.

#![allow(clippy::unwrap_used)]

use haltless_connectors::source::SourceSpec;
use serde_json::{json, Value};

#[test]
fn definitions_read_as_recorded() {
    let recorded = include_str!("data/source_definitions.jsonl");
    let mut cases = 0;
    // HALTLESS_RECORD=1 writes what the code answers now, for a reviewed change of behaviour.
    let record = std::env::var("HALTLESS_RECORD").is_ok();
    let mut now = String::new();
    for line in recorded.lines() {
        let expected: Value = serde_json::from_str(line).unwrap();
        let doc = expected["doc"].clone();
        let got = match SourceSpec::from_json(doc.clone()) {
            Ok(spec) => json!({"doc": doc, "ok": serde_json::to_value(&spec).unwrap(),
                               "redacted": spec.redacted()}),
            Err(errors) => json!({"doc": doc, "errors": errors.iter()
                .map(|e| json!([e.field, e.reason])).collect::<Vec<_>>()}),
        };
        if record {
            now.push_str(&serde_json::to_string(&got).unwrap());
            now.push('\n');
        } else {
            assert_eq!(got, expected);
        }
        cases += 1;
    }
    if record {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/source_definitions.jsonl"
        );
        std::fs::write(path, now).unwrap();
    }
    assert!(cases > 20, "the corpus is there");
}
