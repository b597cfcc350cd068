//! Scores the default detectors on a NAB folder without Kafka: `cargo run --release -p haltless-processors
//! --example nab_score -- DIR [ONLY,...]`.
#![allow(clippy::unwrap_used)]
use haltless_processors::detection::backtest::nab::{self, Profile};
use haltless_processors::detection::backtest::series::run_corpus;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let only: Vec<String> = args
        .get(2)
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default();
    let windows =
        nab::parse_windows(&std::fs::read_to_string(dir.join("combined_windows.json")).unwrap())
            .unwrap();
    let mut streams = Vec::new();
    for (k, w) in &windows {
        if !only.is_empty() && !only.iter().any(|o| k.contains(o.as_str())) {
            continue;
        }
        let s =
            nab::parse_csv(&std::fs::read_to_string(dir.join("data").join(k)).unwrap()).unwrap();
        streams.push((k.clone(), s, w.clone()));
    }
    let rules: Vec<haltless_processors::detection::logic::rules::Rule> = match std::env::var("CTX") {
        Ok(ctx) => serde_json::from_str(&format!(
            r#"[{{"id": "default:context:value", "when": {{"metric": "value", "detector": "context", {ctx}}}, "clear_after": {}}}]"#,
            std::env::var("CLEAR").unwrap_or("96".into()))).unwrap(),
        Err(_) => vec![],
    };
    let (runs, tally) = run_corpus(
        streams
            .iter()
            .map(|(k, s, w)| (k.as_str(), s.as_slice(), w.as_slice())),
        &rules,
        &Profile::STANDARD,
    );
    let (mut tp, mut fn_, mut fp) = (0, 0, 0);
    for (k, r, s) in &runs {
        println!(
            "{k:<60} {:>4} {:>3} {:>3} {:>3} {:>8.3}",
            r.detections(),
            s.true_positives,
            s.false_negatives,
            s.false_positives,
            s.raw
        );
        tp += s.true_positives;
        fn_ += s.false_negatives;
        fp += s.false_positives;
    }
    println!("TP {tp} FN {fn_} FP {fp} score {:.1}", tally.normalized());
}
