//! `haltless train` and `haltless predict` as a user runs them: files in, lines out, and bad input
//! refused with a message that names the problem (never a panic, never a NaN).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use haltless_processors::prediction::cmapss::{parse, simulate};
use haltless_processors::prediction::{RulModel, TrainOptions};

struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("haltless-predict-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn haltless(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haltless"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the haltless binary runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A model trained quickly on a simulated fleet (the real recipe with fewer trees).
fn model_file(scratch: &Scratch) -> PathBuf {
    let runs = parse(&simulate(6, 21)).unwrap();
    let model = RulModel::train(&runs, &TrainOptions::quick()).unwrap();
    scratch.file("model.json", &model.to_json())
}

/// The simulated fleet with every unit cut `before` cycles before its failure.
fn partial_runs(units: u32, before: usize) -> String {
    let text = simulate(units, 99);
    let mut out = String::new();
    for run in parse(&text).unwrap() {
        let keep = run.cycles.len() - before;
        for line in text
            .lines()
            .filter(|l| l.split(' ').next() == Some(run.unit.to_string().as_str()))
            .take(keep)
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn predict_prints_one_unit_rul_line_per_unit() {
    let scratch = Scratch::new();
    let model = model_file(&scratch);
    let data = scratch.file("test.txt", &partial_runs(4, 50));
    let out = haltless(&["predict", "--model", path(&model), "--cmapss", path(&data)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        let (unit, rul) = line.split_once(',').unwrap();
        assert_eq!(unit, (i + 1).to_string());
        let rul: f64 = rul.parse().unwrap();
        assert!((rul - 50.0).abs() < 30.0, "{line}");
    }
    let out = haltless(&[
        "predict",
        "--model",
        path(&model),
        "--cmapss",
        path(&data),
        "--interval",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    for line in stdout.lines() {
        let v: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
        assert_eq!(v.len(), 4, "{line}");
        assert!(v[2] <= v[1] && v[1] <= v[3], "{line}");
    }
}

/// `text` with field `field` of line `line` (both 0-based) replaced.
fn with_field(text: &str, line: usize, field: usize, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut fields: Vec<&str> = lines[line].split(' ').collect();
    fields[field] = value;
    lines[line] = fields.join(" ");
    lines.join("\n")
}

fn refused(args: &[&str], expected: &str) {
    let out = haltless(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_is_refused_naming_the_problem() {
    let scratch = Scratch::new();
    let model = model_file(&scratch);
    let good = partial_runs(3, 40);
    let predict = |name: &str, text: &str, expected: &str| {
        let data = scratch.file(name, text);
        refused(
            &["predict", "--model", path(&model), "--cmapss", path(&data)],
            expected,
        );
    };
    predict(
        "nan.txt",
        &with_field(&good, 1, 7, "NaN"),
        "line 2, column 8 (s3): `NaN` is not a finite number",
    );
    let missing: Vec<String> = good
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .collect();
    predict(
        "missing.txt",
        &missing.join("\n"),
        "line 1: expected 26 columns (unit, cycle, 3 operational settings, 21 sensors), found 25",
    );
    let short = format!(
        "{good}{}",
        simulate(1, 5)
            .lines()
            .take(2)
            .map(|l| l.replacen("1 ", "9 ", 1) + "\n")
            .collect::<String>()
    );
    predict(
        "short.txt",
        &short,
        "unit 9 has 2 cycle(s); at least 5 are needed",
    );
    predict("empty.txt", "\n", "the data holds no rows");
    let not_a_model = scratch.file("not-a-model.json", "{\"trees\": []}");
    let data = scratch.file("ok.txt", &good);
    refused(
        &[
            "predict",
            "--model",
            path(&not_a_model),
            "--cmapss",
            path(&data),
        ],
        "not a Haltless RUL model",
    );

    let out = scratch.0.join("never.json");
    let train = |name: &str, text: &str, expected: &str| {
        let data = scratch.file(name, text);
        refused(
            &["train", "--cmapss", path(&data), "--out", path(&out)],
            expected,
        );
    };
    train(
        "three-units.txt",
        &simulate(3, 7),
        "3 unit(s) in the training data; training needs at least 5 run-to-failure units",
    );
    train(
        "nan-train.txt",
        &with_field(&simulate(6, 7), 0, 4, "nan"),
        "`nan` is not a finite number",
    );
    let flat: String = simulate(6, 7)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!("{} {}\n", f[..5].join(" "), ["1.0"; 21].join(" "))
        })
        .collect();
    train(
        "flat.txt",
        &flat,
        "every sensor is constant in the training data",
    );
    assert!(!out.exists(), "no model is written from refused data");
}
