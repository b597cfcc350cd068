//! `haltless backtest`: the detectors over recorded series (CSV files or the NAB corpus), writing NAB
//! results files and printing detections and NAB scores.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use haltless_processors::detect::backtest::{run_corpus, run_series};
use haltless_processors::detect::nab::{self, Profile};
use haltless_processors::detect::rules::Rule;

/// What to backtest.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    /// One `timestamp,value` CSV.
    pub csv: Option<PathBuf>,
    /// A NAB-style folder: `combined_windows.json` and `data/<group>/<stream>.csv`.
    pub nab: Option<PathBuf>,
    /// Labels for `csv`: a `combined_windows.json`, with the key of the stream in it.
    pub labels: Option<PathBuf>,
    /// The stream's key in `labels`; by default the CSV's `<parent folder>/<file name>`.
    pub stream: Option<String>,
    /// A JSON array of rules on the metric `value`; the default detectors when absent.
    pub rules: Option<PathBuf>,
    /// Where results go: a file for `csv`, a folder for `nab`.
    pub out: Option<PathBuf>,
    /// Only streams whose key contains one of these texts (with `nab`); all when empty.
    pub only: Vec<String>,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs the backtest and prints its summary.
pub fn run(config: &BacktestConfig) -> anyhow::Result<()> {
    let rules: Vec<Rule> = match &config.rules {
        Some(p) => serde_json::from_str(&read(p)?)
            .with_context(|| format!("{}: not a JSON array of rules", p.display()))?,
        None => Vec::new(),
    };
    let profile = Profile::STANDARD;
    match (&config.csv, &config.nab) {
        (Some(csv), None) => {
            let series = nab::parse_csv(&read(csv)?)?;
            let key = config.stream.clone().unwrap_or_else(|| stream_key(csv));
            let windows = match &config.labels {
                Some(p) => nab::parse_windows(&read(p)?)?
                    .remove(&key)
                    .with_context(|| {
                        format!(
                            "{} has no stream {key:?}; name it with --stream",
                            p.display()
                        )
                    })?,
                None => Vec::new(),
            };
            let run = run_series(&key, &series, &rules, &windows);
            if let Some(out) = &config.out {
                std::fs::write(out, nab::write_results_csv(&run.rows))?;
            }
            println!(
                "{key}: {} readings, {} alerts raised",
                series.len(),
                run.detections()
            );
            if config.labels.is_some() {
                let s = run.score(&windows, &profile);
                let (null, perfect) = (
                    nab::null_raw(&windows, &profile),
                    nab::perfect_raw(&windows, &profile),
                );
                let norm = if windows.is_empty() {
                    "n/a (no labelled windows)".to_owned()
                } else {
                    format!("{:.1}", nab::normalized_score(s.raw, null, perfect))
                };
                println!(
                    "  windows {}: {} detected, {} missed, {} false positives; raw {:.3}; NAB standard {norm}",
                    windows.len(),
                    s.true_positives,
                    s.false_negatives,
                    s.false_positives,
                    s.raw
                );
            }
            Ok(())
        }
        (None, Some(dir)) => run_nab(dir, config, &rules, &profile),
        _ => anyhow::bail!("give exactly one of --csv FILE or --nab FOLDER"),
    }
}

fn run_nab(
    dir: &Path,
    config: &BacktestConfig,
    rules: &[Rule],
    profile: &Profile,
) -> anyhow::Result<()> {
    let windows = nab::parse_windows(&read(&dir.join("combined_windows.json"))?)?;
    let mut streams = Vec::new();
    for (key, w) in &windows {
        if !config.only.is_empty() && !config.only.iter().any(|o| key.contains(o.as_str())) {
            continue;
        }
        let series =
            nab::parse_csv(&read(&dir.join("data").join(key))?).with_context(|| key.clone())?;
        streams.push((key.clone(), series, w.clone()));
    }
    let (runs, tally) = run_corpus(
        streams
            .iter()
            .map(|(k, s, w)| (k.as_str(), s.as_slice(), w.as_slice())),
        rules,
        profile,
    );
    println!(
        "{:<60} {:>7} {:>7} {:>4} {:>4} {:>4} {:>8}",
        "stream", "rows", "alerts", "TP", "FN", "FP", "raw"
    );
    for (key, run, s) in &runs {
        println!(
            "{key:<60} {:>7} {:>7} {:>4} {:>4} {:>4} {:>8.3}",
            run.rows.len(),
            run.detections(),
            s.true_positives,
            s.false_negatives,
            s.false_positives,
            s.raw
        );
        if let Some(out) = &config.out {
            let path = out.join(key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, nab::write_results_csv(&run.rows))?;
        }
    }
    let (tp, fn_, fp) = runs.iter().fold((0, 0, 0), |a, (_, _, s)| {
        (
            a.0 + s.true_positives,
            a.1 + s.false_negatives,
            a.2 + s.false_positives,
        )
    });
    println!(
        "{} streams: {tp} windows detected, {fn_} missed, {fp} false positives",
        runs.len()
    );
    println!("NAB score (standard profile): {:.1}", tally.normalized());
    Ok(())
}

/// `<parent>/<file>` of a path, the form of NAB's stream keys.
fn stream_key(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(parent) => format!("{}/{file}", parent.to_string_lossy()),
        None => file,
    }
}
