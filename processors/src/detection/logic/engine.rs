//! One machine's detection: runs the conditions of every rule that looks at an incoming reading's metric,
//! evaluates the rule trees and drives each rule's alert lifecycle.
//!
//! Late and out-of-order readings: a reading older than the newest one seen for its metric still teaches the
//! detectors (within their windows) but never raises, updates or resolves an alert, so the alert stream
//! depends only on the readings in the order the topic holds them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::baseline::Baseline;
use super::context::Context;
use super::drift::Drift;
use super::ewma::Ewma;
use super::explain::explain;
use super::lifecycle::{alert_id, Phase, Step, Transition};
use super::rate::Rate;
use super::rules::{default_rules, Condition, Rule, Severity, Shape, Test};
use super::settings::DetectionSettings;
use super::{Detector, Sample, Verdict};

/// Rules with at most this many leaves are evaluated without allocating.
const INLINE_LEAVES: usize = 64;

/// Where a reading sits in Kafka: (partition, offset).
pub type Offset = (i32, i64);

/// One reading of one metric of the machine.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The metric.
    pub metric: &'a str,
    /// Event time and value.
    pub sample: Sample,
    /// Its place in the readings topic, when it came from there.
    pub offset: Option<Offset>,
}

/// An alert's transition, with what caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Deterministic alert id.
    pub alert_id: Uuid,
    /// Raised, updated or resolved.
    pub transition: Transition,
    /// The rule.
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The detector of the strongest condition.
    pub detector: String,
    /// That condition's metric.
    pub metric: String,
    /// Observed value (or velocity).
    pub observed: f64,
    /// What the detector expected.
    pub expected: f64,
    /// The detector's score.
    pub score: f64,
    /// The score at which it fires.
    pub limit: f64,
    /// Event time of the reading that caused the transition.
    pub event_time_ms: i64,
    /// The readings behind the conditions that held.
    pub offsets: Vec<Offset>,
    /// Which feature fired and why, in words.
    pub explanation: String,
    /// Each feature's score (`-log10` of how often that is expected), strongest first.
    pub contributions: Vec<(String, f64)>,
}

/// A maintenance event (replacement, repair, calibration) that makes detectors forget what they learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reset {
    /// Event time from which the machine is another (ms).
    pub at_ms: i64,
    /// The machines it applies to (names); all of the tenant's when empty.
    pub machines: Vec<String>,
    /// The metrics whose detectors start afresh; all when empty.
    pub metrics: Vec<String>,
}

/// Whether one of `resets` (sorted by time) falls after `previous` and at or before `ts` for `metric` of
/// `machine`: its detectors then start afresh with the reading at `ts`. Readings arrive in order per metric,
/// and the newest time of each is part of the state, so a reset applies exactly once, in a replay too.
fn reset_due(resets: &[Reset], machine: &str, metric: &str, previous: i64, ts: i64) -> bool {
    let from = resets.partition_point(|r| r.at_ms <= previous);
    resets[from..]
        .iter()
        .take_while(|r| r.at_ms <= ts)
        .any(|r| {
            (r.machines.is_empty() || r.machines.iter().any(|m| m == machine))
                && (r.metrics.is_empty() || r.metrics.iter().any(|m| m == metric))
        })
}

/// Detector state of one condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) enum DetectorState {
    #[default]
    Threshold,
    Ewma(Ewma),
    Baseline(Baseline),
    Rate(Rate),
    Context(Box<Context>),
    Drift(Drift),
}

/// The last verdict of one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Last {
    pub(crate) ts_ms: i64,
    pub(crate) verdict: Verdict,
    pub(crate) offset: Option<Offset>,
}

/// What one condition remembers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConditionState {
    pub(crate) detector: DetectorState,
    pub(crate) last: Option<Last>,
}

/// Everything detection remembers about one machine. The state changelog's format (and its conversion)
/// lives with the processor, which reads and writes it through [`Stored`]; the serde form is that same
/// [`Stored`], the JSON the changelog carried before it had a schema.
///
/// In memory the default rules' state lives with the metric they watch ([`Series`]), so a reading reaches
/// it with one lookup by metric; the machine's own rules (and default rules no longer in force, until they
/// are retired) keep theirs by rule id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct MachineState {
    /// Per metric seen: its newest time and its default rules.
    series: BTreeMap<String, Series>,
    /// Per rule id (rules of the machine), per leaf position.
    conditions: BTreeMap<String, BTreeMap<usize, ConditionState>>,
    /// Per rule id (rules of the machine).
    phases: BTreeMap<String, Phase>,
    /// The strongest severity ratio the last reading got from any condition (for backtests).
    last_ratio: f64,
}

/// What detection remembers about one metric.
#[derive(Debug, Clone)]
struct Series {
    /// Event time of its newest reading.
    newest: i64,
    /// Its default rules and their state, from its first reading not named by a rule of the machine (after
    /// a restore too).
    defaults: Option<Defaults>,
}

/// A metric's default rules, built under the settings in force, with their state.
#[derive(Debug, Clone)]
struct Defaults {
    /// Held, so no other settings can be allocated where these are: the same address is the same settings.
    settings: Arc<DetectionSettings>,
    rules: Vec<Rule>,
    /// In `rules` order.
    states: Vec<RuleState>,
}

/// What one rule remembers.
#[derive(Debug, Clone, Default, PartialEq)]
struct RuleState {
    /// Per leaf position.
    leaves: BTreeMap<usize, ConditionState>,
    /// Its alert's lifecycle, once evaluated.
    phase: Option<Phase>,
}

/// A machine's state keyed as the changelog keeps it: per rule id, whichever rule it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// Per rule id, per leaf position.
    pub(crate) conditions: BTreeMap<String, BTreeMap<usize, ConditionState>>,
    /// Per rule id.
    pub(crate) phases: BTreeMap<String, Phase>,
    /// Per metric: the event time of its newest reading.
    pub(crate) newest: BTreeMap<String, i64>,
}

/// [`Stored`], borrowed from a [`MachineState`].
pub(crate) struct View<'a> {
    /// Per rule id, per leaf position.
    pub(crate) conditions: BTreeMap<&'a str, &'a BTreeMap<usize, ConditionState>>,
    /// Per rule id.
    pub(crate) phases: BTreeMap<&'a str, &'a Phase>,
    /// Per metric: the event time of its newest reading.
    pub(crate) newest: BTreeMap<&'a str, i64>,
}

impl From<Stored> for MachineState {
    fn from(s: Stored) -> Self {
        // The default rules take their state back at their metric's first reading.
        let series = s
            .newest
            .into_iter()
            .map(|(metric, newest)| {
                (
                    metric,
                    Series {
                        newest,
                        defaults: None,
                    },
                )
            })
            .collect();
        Self {
            series,
            conditions: s.conditions,
            phases: s.phases,
            last_ratio: 0.0,
        }
    }
}

impl From<MachineState> for Stored {
    fn from(m: MachineState) -> Self {
        m.stored()
    }
}

/// Two states are equal when the changelog would hold the same for them.
impl PartialEq for MachineState {
    fn eq(&self, other: &Self) -> bool {
        self.stored() == other.stored()
    }
}

impl MachineState {
    /// The state keyed as the changelog keeps it, borrowed.
    pub(crate) fn view(&self) -> View<'_> {
        let mut view = View {
            conditions: self
                .conditions
                .iter()
                .map(|(id, c)| (id.as_str(), c))
                .collect(),
            phases: self.phases.iter().map(|(id, p)| (id.as_str(), p)).collect(),
            newest: BTreeMap::new(),
        };
        for (metric, series) in &self.series {
            view.newest.insert(metric.as_str(), series.newest);
            for (rule, state) in series.defaults.iter().flat_map(Defaults::each) {
                if !state.leaves.is_empty() {
                    view.conditions.insert(rule.id.as_str(), &state.leaves);
                }
                if let Some(phase) = &state.phase {
                    view.phases.insert(rule.id.as_str(), phase);
                }
            }
        }
        view
    }

    /// The state keyed as the changelog keeps it.
    fn stored(&self) -> Stored {
        let view = self.view();
        let owned = |id: &&str| (*id).to_owned();
        Stored {
            conditions: view
                .conditions
                .iter()
                .map(|(id, c)| (owned(id), (*c).clone()))
                .collect(),
            phases: view
                .phases
                .iter()
                .map(|(id, p)| (owned(id), (*p).clone()))
                .collect(),
            newest: view.newest.iter().map(|(m, ts)| (owned(m), *ts)).collect(),
        }
    }

    /// Feeds one reading through `rules` (the machine's rules; metrics none of them names get the default
    /// detectors) and returns the alert transitions it caused.
    pub fn observe(
        &mut self,
        tenant: &str,
        machine: &str,
        rules: &[Rule],
        input: Input<'_>,
    ) -> Vec<AlertEvent> {
        // Built once: the default settings hold a `String`, which would be an allocation per reading.
        static DEFAULTS: std::sync::LazyLock<Arc<DetectionSettings>> =
            std::sync::LazyLock::new(Arc::default);
        self.observe_under(tenant, machine, rules, &DEFAULTS, &[], input)
    }

    /// [`Self::observe`] under the tenant's detection `settings` (they shape the default rules; `rules` are
    /// already under them), after the maintenance `resets` (of the tenant, by time) that fall between the
    /// metric's previous reading and this one: the detectors of the metric start afresh.
    pub fn observe_under(
        &mut self,
        tenant: &str,
        machine: &str,
        rules: &[Rule],
        settings: &Arc<DetectionSettings>,
        resets: &[Reset],
        input: Input<'_>,
    ) -> Vec<AlertEvent> {
        if !input.sample.value.is_finite() {
            return Vec::new(); // NaN and infinities never reach a detector
        }
        let ts = input.sample.ts_ms;
        // One lookup for a metric already seen (the key is allocated only for a new one).
        let series = match self.series.get_mut(input.metric) {
            Some(s) => s,
            None => self
                .series
                .entry(input.metric.to_owned())
                .or_insert(Series {
                    newest: i64::MIN,
                    defaults: None,
                }),
        };
        let late = ts < series.newest;
        let reset = !resets.is_empty()
            && !late
            && reset_due(resets, machine, input.metric, series.newest, ts);
        series.newest = series.newest.max(ts);
        let named = rules.iter().any(|r| r.when.mentions(input.metric));
        let mut events = Vec::new();
        if !named {
            match &mut series.defaults {
                // The settings the rules were built under (most readings), or equal ones.
                Some(d) if Arc::ptr_eq(&d.settings, settings) => {}
                Some(d) if *d.settings == **settings => d.settings = Arc::clone(settings),
                Some(_) => {
                    // Other settings: the state goes back by rule id, and the rules built under them take
                    // theirs (the same ids go on with what they learned).
                    if let Some(d) = series.defaults.take() {
                        d.put_back(&mut self.conditions, &mut self.phases);
                    }
                    series.defaults = Some(Defaults::build(
                        input.metric,
                        settings,
                        &mut self.conditions,
                        &mut self.phases,
                    ));
                }
                None => {
                    // The metric's first reading since the start (or a restore): the default rules take
                    // back their state, and those no longer in force resolve what they left open.
                    let d = Defaults::build(
                        input.metric,
                        settings,
                        &mut self.conditions,
                        &mut self.phases,
                    );
                    if !late {
                        events.extend(retire_old_defaults(
                            &mut self.conditions,
                            &mut self.phases,
                            input.metric,
                            &d.rules,
                            ts,
                        ));
                    }
                    series.defaults = Some(d);
                }
            }
        }
        let mut ratio = 0.0;
        // Steps one rule: its leaves on this metric judge the reading (`own`: every leaf is, as in the
        // metric's default rules); a reading in order then evaluates the rule in its `phase` (`None` for a
        // late one, which never makes one). One pass over the leaves does both: a leaf is tallied once it
        // has judged, and its tally depends on nothing else.
        let step = |rule: &Rule,
                    own: bool,
                    leaves: &mut BTreeMap<usize, ConditionState>,
                    phase: Option<&mut Phase>,
                    ratio: &mut f64| {
            let mut tally = Tally::new(rule, ts);
            rule.when.visit(&mut |i, leaf| {
                let state = if own || leaf.metric == input.metric {
                    let state = leaves.entry(i).or_default();
                    if reset {
                        *state = ConditionState::default();
                    }
                    if let Some(verdict) = judge(state, leaf, input.sample) {
                        *ratio = ratio.max(verdict.severity_ratio());
                        state.last = Some(Last {
                            ts_ms: ts,
                            verdict,
                            offset: input.offset,
                        });
                    }
                    Some(&*state)
                } else {
                    leaves.get(&i)
                };
                tally.add(i, leaf, state);
            });
            conclude(&tally, leaves, phase?, tenant, machine, rule)
        };
        for rule in rules.iter().filter(|r| r.when.mentions(input.metric)) {
            let leaves = match self.conditions.get_mut(&rule.id) {
                Some(leaves) => leaves,
                None => self.conditions.entry(rule.id.clone()).or_default(),
            };
            let phase = if late {
                None
            } else if self.phases.contains_key(&rule.id) {
                self.phases.get_mut(&rule.id)
            } else {
                Some(self.phases.entry(rule.id.clone()).or_default())
            };
            if let Some(event) = step(rule, false, leaves, phase, &mut ratio) {
                events.push(event);
            }
        }
        if let (false, Some(d)) = (named, &mut series.defaults) {
            for (rule, state) in d.rules.iter().zip(&mut d.states) {
                let phase = (!late).then(|| state.phase.get_or_insert_with(Phase::default));
                // Not `extend`: that would move the (mostly empty) `Option` of a large event.
                if let Some(event) = step(rule, true, &mut state.leaves, phase, &mut ratio) {
                    events.push(event);
                }
            }
        }
        self.last_ratio = ratio;
        events
    }

    /// How anomalous the last reading looked: the strongest score relative to its limit among the
    /// conditions it fed (above 1.0, some condition fired).
    pub fn last_ratio(&self) -> f64 {
        self.last_ratio
    }

    /// Forgets the state of rules that no longer exist (default rules of a metric included).
    pub fn retain_rules(&mut self, rules: &[Rule]) {
        let keep = |id: &String| id.starts_with("default:") || rules.iter().any(|r| &r.id == id);
        self.conditions.retain(|id, _| keep(id));
        self.phases.retain(|id, _| keep(id));
    }
}

impl Defaults {
    /// The default rules of `metric` under `settings`, with the state `conditions` and `phases` hold for
    /// them (taken out of those).
    fn build(
        metric: &str,
        settings: &Arc<DetectionSettings>,
        conditions: &mut BTreeMap<String, BTreeMap<usize, ConditionState>>,
        phases: &mut BTreeMap<String, Phase>,
    ) -> Self {
        let rules = default_rules(metric, settings);
        let states = rules
            .iter()
            .map(|r| RuleState {
                leaves: conditions.remove(&r.id).unwrap_or_default(),
                phase: phases.remove(&r.id),
            })
            .collect();
        Self {
            settings: Arc::clone(settings),
            rules,
            states,
        }
    }

    /// Each rule with its state.
    fn each(&self) -> impl Iterator<Item = (&Rule, &RuleState)> {
        self.rules.iter().zip(&self.states)
    }

    /// The state back among the rules kept by id ([`Defaults::build`] takes it out again).
    fn put_back(
        self,
        conditions: &mut BTreeMap<String, BTreeMap<usize, ConditionState>>,
        phases: &mut BTreeMap<String, Phase>,
    ) {
        for (rule, state) in self.rules.into_iter().zip(self.states) {
            if !state.leaves.is_empty() {
                conditions.insert(rule.id.clone(), state.leaves);
            }
            if let Some(phase) = state.phase {
                phases.insert(rule.id, phase);
            }
        }
    }
}

/// Forgets the default rules of `metric` that are no longer its defaults (a state restored from before
/// the defaults changed), resolving the alerts they left open, so none stays open for ever.
fn retire_old_defaults(
    conditions: &mut BTreeMap<String, BTreeMap<usize, ConditionState>>,
    phases: &mut BTreeMap<String, Phase>,
    metric: &str,
    defaults: &[Rule],
    ts: i64,
) -> Vec<AlertEvent> {
    let suffix = format!(":{metric}");
    let old: Vec<String> = phases
        .keys()
        .chain(conditions.keys())
        .filter(|id| id.starts_with("default:") && id.ends_with(&suffix))
        .filter(|id| !defaults.iter().any(|r| &r.id == *id))
        .cloned()
        .collect();
    let mut events = Vec::new();
    for id in old {
        let last = conditions
            .remove(&id)
            .and_then(|leaves| leaves.into_values().find_map(|c| c.last));
        let phase = phases.remove(&id);
        let (Some(Phase::Active { id: alert, .. }), Some(last)) = (phase, last) else {
            continue;
        };
        let detector = id
            .strip_prefix("default:")
            .and_then(|rest| rest.strip_suffix(suffix.as_str()))
            .unwrap_or_default()
            .to_owned();
        let why = explain(&detector, metric, &last.verdict, last.ts_ms, true);
        events.push(AlertEvent {
            alert_id: alert,
            transition: Transition::Resolved,
            rule_id: id.clone(),
            rule_name: format!("{detector} on {metric}"),
            severity: Severity::Warning,
            detector,
            metric: metric.to_owned(),
            observed: last.verdict.observed,
            expected: last.verdict.expected,
            score: last.verdict.score,
            limit: last.verdict.limit,
            event_time_ms: ts,
            offsets: last.offset.into_iter().collect(),
            explanation: why.text,
            contributions: why.contributions,
        });
    }
    events
}

/// What the leaves of a rule say at one evaluation, taken in leaf by leaf ([`Expr::visit`] order): which
/// hold by the raising and by the sustaining limits, the strongest that sustains (the last of equals) and the
/// first with a fresh verdict. Allocates nothing for rules of at most [`INLINE_LEAVES`] leaves.
///
/// [`Expr::visit`]: super::rules::Expr::visit
struct Tally {
    /// Event time of the evaluation.
    ts: i64,
    /// How the rule combines its leaves.
    shape: Shape,
    /// A verdict older than this (ms) no longer counts.
    max_age_ms: i64,
    clear_ratio: f64,
    raise: Flags,
    sustain: Flags,
    strongest: Option<(usize, f64)>,
    first_fresh: Option<usize>,
}

/// One flag per leaf, all off at first.
enum Flags {
    /// Bit `i` for leaf `i`.
    Bits(u64),
    Heap(Box<[bool]>),
}

impl Flags {
    fn new(n: usize) -> Self {
        if n <= INLINE_LEAVES {
            Flags::Bits(0)
        } else {
            Flags::Heap(vec![false; n].into_boxed_slice())
        }
    }

    fn set(&mut self, i: usize, on: bool) {
        match self {
            Flags::Bits(bits) if i < INLINE_LEAVES => *bits |= u64::from(on) << i,
            Flags::Bits(_) => {}
            Flags::Heap(v) => {
                if let Some(slot) = v.get_mut(i) {
                    *slot = on;
                }
            }
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Flags::Bits(bits) => i < INLINE_LEAVES && bits >> i & 1 == 1,
            Flags::Heap(v) => v.get(i).copied().unwrap_or(false),
        }
    }

    /// Every one of the `n` flags is on.
    fn all(&self, n: usize) -> bool {
        match self {
            Flags::Bits(bits) => {
                *bits
                    == u64::MAX
                        .checked_shr(INLINE_LEAVES.saturating_sub(n) as u32)
                        .unwrap_or(0)
            }
            Flags::Heap(v) => v.iter().take(n).all(|on| *on),
        }
    }

    /// Some flag is on.
    fn any(&self) -> bool {
        match self {
            Flags::Bits(bits) => *bits != 0,
            Flags::Heap(v) => v.iter().any(|on| *on),
        }
    }
}

impl Tally {
    fn new(rule: &Rule, ts: i64) -> Self {
        let shape = rule.when.shape();
        let n = shape.leaves();
        Self {
            ts,
            shape,
            max_age_ms: rule.max_age_secs as i64 * 1000,
            clear_ratio: rule.clear_ratio,
            raise: Flags::new(n),
            sustain: Flags::new(n),
            strongest: None,
            first_fresh: None,
        }
    }

    /// The last verdict of a leaf's `state`, when it is fresh.
    fn fresh<'a>(&self, state: Option<&'a ConditionState>) -> Option<&'a Last> {
        state
            .and_then(|s| s.last.as_ref())
            .filter(|l| self.ts - l.ts_ms <= self.max_age_ms)
    }

    /// Whether the rule holds when the leaves `flags` holds do.
    fn holds(&self, rule: &Rule, flags: &Flags) -> bool {
        match self.shape {
            Shape::Flat { all: true, n } => flags.all(n),
            Shape::Flat { all: false, .. } => flags.any(),
            Shape::Nested { .. } => rule.when.eval(|i| flags.get(i)),
        }
    }

    /// Takes in leaf `i`, condition `c`, whose state is `state`.
    fn add(&mut self, i: usize, c: &Condition, state: Option<&ConditionState>) {
        let Some(l) = self.fresh(state) else { return };
        self.first_fresh.get_or_insert(i);
        let sustain = l.verdict.score > sustain_limit(&c.test, &l.verdict, self.clear_ratio);
        self.raise.set(i, l.verdict.anomalous);
        self.sustain.set(i, sustain);
        let ratio = l.verdict.severity_ratio();
        if sustain
            && self
                .strongest
                .is_none_or(|(_, r)| ratio.total_cmp(&r).is_ge())
        {
            self.strongest = Some((i, ratio));
        }
    }
}

/// Evaluates `rule` from the `tally` of its leaves (whose states are `states`) and steps its lifecycle,
/// `phase`. Allocates nothing unless the alert changes.
fn conclude(
    tally: &Tally,
    states: &BTreeMap<usize, ConditionState>,
    phase: &mut Phase,
    tenant: &str,
    machine: &str,
    rule: &Rule,
) -> Option<AlertEvent> {
    let ts = tally.ts;
    let step = Step {
        ts_ms: ts,
        raise: tally.holds(rule, &tally.raise),
        sustain: tally.holds(rule, &tally.sustain),
        ratio: tally.strongest.map(|(_, r)| r).unwrap_or(0.0),
    };
    let (transition, alert_id) = phase.step(step, rule.hold, rule.clear_after, |raised| {
        alert_id(tenant, machine, &rule.id, raised)
    })?;
    // A resolution reports the condition that last held, so it says what cleared.
    let leaf = tally.strongest.map(|(i, _)| i).or(tally.first_fresh)?;
    let last = tally.fresh(states.get(&leaf))?;
    let leaves = rule.when.conditions();
    let on: Vec<usize> = (0..leaves.len())
        .filter(|i| tally.sustain.get(*i))
        .collect();
    let why = explain(
        leaves[leaf].test.name(),
        &leaves[leaf].metric,
        &last.verdict,
        last.ts_ms,
        transition == Transition::Resolved,
    );
    Some(AlertEvent {
        alert_id,
        transition,
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        severity: rule.severity,
        detector: leaves[leaf].test.name().to_owned(),
        metric: leaves[leaf].metric.clone(),
        observed: last.verdict.observed,
        expected: last.verdict.expected,
        score: last.verdict.score,
        limit: last.verdict.limit,
        event_time_ms: ts,
        // The readings that hold the alert up, or for a resolution the one that cleared it.
        offsets: if on.is_empty() {
            last.offset.into_iter().collect()
        } else {
            on.iter()
                .filter_map(|i| tally.fresh(states.get(i))?.offset)
                .collect()
        },
        explanation: why.text,
        contributions: why.contributions,
    })
}

/// Runs one condition's detector on `sample`. Inlined: a reading runs it once per leaf, and its verdict
/// then goes straight to where the leaf keeps it.
#[inline]
fn judge(state: &mut ConditionState, leaf: &Condition, sample: Sample) -> Option<Verdict> {
    let v = sample.value;
    match (&leaf.test, &mut state.detector) {
        (Test::Above { value, .. }, _) => Some(Verdict::new(v, *value, v, *value)),
        (Test::Below { value, .. }, _) => Some(Verdict::new(v, *value, -v, -value)),
        (Test::Ewma(c), DetectorState::Ewma(d)) => d.observe(c, sample),
        (Test::Baseline(c), DetectorState::Baseline(d)) => d.observe(c, sample),
        (Test::Rate(c), DetectorState::Rate(d)) => d.observe(c, sample),
        (Test::Context(c), DetectorState::Context(d)) => d.observe(c, sample),
        (Test::Drift(c), DetectorState::Drift(d)) => d.observe(c, sample),
        (test, slot) => {
            *slot = DetectorState::new(test);
            judge_afresh(state, leaf, sample)
        }
    }
}

/// [`judge`] once the condition's detector has started afresh (the rule changed it).
#[cold]
#[inline(never)]
fn judge_afresh(state: &mut ConditionState, leaf: &Condition, sample: Sample) -> Option<Verdict> {
    judge(state, leaf, sample)
}

impl DetectorState {
    /// A fresh detector for `test`.
    fn new(test: &Test) -> Self {
        match test {
            Test::Ewma(_) => DetectorState::Ewma(Ewma::default()),
            Test::Baseline(_) => DetectorState::Baseline(Baseline::default()),
            Test::Rate(_) => DetectorState::Rate(Rate::default()),
            Test::Context(_) => DetectorState::Context(Box::default()),
            Test::Drift(_) => DetectorState::Drift(Drift::default()),
            Test::Above { .. } | Test::Below { .. } => DetectorState::Threshold,
        }
    }
}

/// The score above which a condition that already fired stays on.
fn sustain_limit(test: &Test, v: &Verdict, clear_ratio: f64) -> f64 {
    match test {
        Test::Above { hysteresis, .. } | Test::Below { hysteresis, .. } => v.limit - hysteresis,
        _ => v.limit * clear_ratio,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detection::logic::testing::noisy;

    /// Feeds `series` (whose first reading sits at offset `first`) under `settings` and `resets`.
    fn feed_under(
        state: &mut MachineState,
        settings: &DetectionSettings,
        resets: &[Reset],
        series: &[(&str, Sample)],
        first: usize,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let settings = Arc::new(settings.clone());
        for (i, (metric, s)) in series.iter().enumerate() {
            let input = Input {
                metric,
                sample: *s,
                offset: Some((0, (first + i) as i64)),
            };
            events.extend(state.observe_under("t1", "press-07", &[], &settings, resets, input));
        }
        events
    }

    fn run(state: &mut MachineState, rules: &[Rule], series: &[(&str, Sample)]) -> Vec<AlertEvent> {
        series
            .iter()
            .enumerate()
            .flat_map(|(i, (metric, s))| {
                state.observe(
                    "t1",
                    "press-07",
                    rules,
                    Input {
                        metric,
                        sample: *s,
                        offset: Some((0, i as i64)),
                    },
                )
            })
            .collect()
    }

    /// Four days of a temperature every 5 minutes: a spike on day 2, a step on day 3, then a slow drift.
    fn plant_day() -> Vec<(&'static str, Sample)> {
        let mut s = noisy(4 * 288, 60.0, 0.5, 300_000);
        s[400].value += 12.0; // spike
        for x in s.iter_mut().skip(600) {
            x.value += 8.0; // step, lasting
        }
        for (i, x) in s.iter_mut().enumerate().skip(900) {
            x.value += (i - 900) as f64 * 0.05; // slow drift: +0.6 per hour
        }
        s.into_iter().map(|x| ("spindle_temp", x)).collect()
    }

    #[test]
    fn default_detectors_raise_spike_and_step_once_each_and_resolve_them() {
        let events = run(&mut MachineState::default(), &[], &plant_day());
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e.transition, e.detector.as_str(), e.event_time_ms / 300_000))
            .collect();
        let raised: Vec<_> = summary
            .iter()
            .filter(|s| s.0 == Transition::Raised)
            .collect();
        assert!(
            raised.iter().any(|s| s.2 == 400),
            "spike raised: {summary:?}"
        );
        assert!(
            raised.iter().any(|s| s.2 == 600),
            "step raised: {summary:?}"
        );
        // The spike's and the step's alerts resolve; one open when the drift (from reading 900 to the end)
        // goes on may stay open, as a drift's alert should.
        for e in events
            .iter()
            .filter(|e| e.transition == Transition::Raised && e.event_time_ms < 800 * 300_000)
        {
            let resolved = events
                .iter()
                .filter(|r| r.alert_id == e.alert_id && r.transition == Transition::Resolved)
                .count();
            assert_eq!(resolved, 1, "{e:?} resolved once");
        }
        let spike = events
            .iter()
            .find(|e| e.transition == Transition::Raised && e.event_time_ms == 400 * 300_000)
            .unwrap();
        assert_eq!(spike.offsets, vec![(0, 400)]);
        assert!(
            (spike.expected - 60.0).abs() < 1.0 && spike.observed > 70.0,
            "{spike:?}"
        );
        // It says why in words a person reads, and each feature's share in numbers.
        println!("{}", spike.explanation);
        // (The level and the new range both find it; the range, judged reading by reading, says it.)
        assert!(
            spike.explanation.starts_with("new maximum: spindle_temp 7")
                && spike.explanation.contains("recent days (60.")
                && spike.explanation.contains("readings"),
            "{spike:?}"
        );
        assert!(spike.contributions.len() >= 3, "{spike:?}");
        assert!(spike.contributions[0].1 >= spike.contributions[1].1);
    }

    #[test]
    fn a_baseline_rule_catches_the_slow_drift() {
        let rule: Rule = serde_json::from_str(
            r#"{"id": "drift", "when": {"metric": "spindle_temp", "detector": "baseline"}, "hold": {"readings": 3}}"#,
        )
        .unwrap();
        // Two quiet days, then a drift of +1.2 per hour.
        let mut series = noisy(3 * 288, 60.0, 0.5, 300_000);
        for (i, x) in series.iter_mut().enumerate().skip(576) {
            x.value += (i - 576) as f64 * 0.1;
        }
        let series: Vec<_> = series.into_iter().map(|x| ("spindle_temp", x)).collect();
        let events = run(
            &mut MachineState::default(),
            std::slice::from_ref(&rule),
            &series,
        );
        let raised: Vec<_> = events
            .iter()
            .filter(|e| e.transition == Transition::Raised)
            .map(|e| e.event_time_ms / 300_000)
            .collect();
        assert_eq!(raised.len(), 1, "raised once: {raised:?}");
        assert!(
            raised[0] > 576 && raised[0] < 576 + 12 * 12,
            "within 12 h of the drift's start: {raised:?}"
        );
        // The default EWMA follows such a drift and stays silent.
        let defaults = run(&mut MachineState::default(), &[], &series);
        assert!(
            defaults.iter().all(|e| e.detector != "ewma"),
            "{defaults:?}"
        );
        assert!(
            events.iter().all(|e| e.detector == "baseline"),
            "a named metric loses its default detectors"
        );
    }

    #[test]
    fn composite_rules_need_every_branch_and_hold() {
        let rule: Rule = serde_json::from_str(
            r#"{"id": "hot-and-shaking", "severity": "critical", "hold": {"secs": 60},
                "when": {"all": [{"metric": "temp", "detector": "above", "value": 80, "hysteresis": 5},
                                 {"metric": "vib", "detector": "above", "value": 3}]}}"#,
        )
        .unwrap();
        let at = |m: &'static str, min: i64, v: f64| {
            (
                m,
                Sample {
                    ts_ms: min * 30_000,
                    value: v,
                },
            )
        };
        let series = [
            at("temp", 0, 85.0),
            at("vib", 0, 1.0),   // hot only
            at("vib", 1, 4.0),   // both: pending
            at("temp", 2, 86.0), // 30 s held
            at("vib", 3, 4.5),   // 60 s held: raised
            at("temp", 4, 78.0), // within hysteresis: stays
            at("temp", 5, 70.0),
            at("temp", 6, 70.0),
            at("temp", 7, 70.0), // off three times: resolved
        ];
        let events = run(&mut MachineState::default(), &[rule], &series);
        let got: Vec<_> = events
            .iter()
            .map(|e| (e.transition, e.event_time_ms / 30_000))
            .collect();
        assert_eq!(
            got,
            vec![(Transition::Raised, 3), (Transition::Resolved, 7)]
        );
        assert_eq!(events[0].severity, Severity::Critical);
        assert_eq!(events[0].offsets.len(), 2, "both readings behind the alert");
    }

    #[test]
    fn rules_of_more_leaves_than_a_word_evaluate_alike() {
        // `any` of n leaves of which one fires (at either end), and `all` of n leaves that all fire, for
        // rules within and beyond the 64 leaves kept in a word's bits.
        let rule = |kind: &str, n: usize, hot: Option<usize>| -> Rule {
            let leaves: Vec<String> = (0..n)
                .map(|i| {
                    let limit = if hot.is_none_or(|h| h == i) {
                        50
                    } else {
                        1_000
                    };
                    format!(r#"{{"metric": "temp", "detector": "above", "value": {limit}}}"#)
                })
                .collect();
            serde_json::from_str(&format!(
                r#"{{"id": "{kind}-{n}", "when": {{"{kind}": [{}]}}}}"#,
                leaves.join(",")
            ))
            .unwrap()
        };
        let series: Vec<(&str, Sample)> = [40.0, 60.0, 40.0, 40.0, 40.0, 40.0]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let ts_ms = i as i64 * 60_000;
                ("temp", Sample { ts_ms, value: *v })
            })
            .collect();
        let rules = [(3, Some(0)), (3, Some(2)), (70, Some(0)), (70, Some(69))]
            .map(|(n, hot)| (format!("any of {n}, {hot:?} hot"), rule("any", n, hot)))
            .into_iter()
            .chain([1, 2, 64, 65, 70].map(|n| (format!("all of {n}"), rule("all", n, None))));
        for (what, rule) in rules {
            let events = run(&mut MachineState::default(), &[rule], &series);
            let got: Vec<_> = events
                .iter()
                .map(|e| (e.transition, e.event_time_ms / 60_000, e.observed))
                .collect();
            assert_eq!(
                got,
                vec![
                    (Transition::Raised, 1, 60.0),
                    (Transition::Resolved, 4, 40.0)
                ],
                "{what}"
            );
            let offsets = &events[0].offsets;
            assert!(
                !offsets.is_empty() && offsets.iter().all(|o| *o == (0, 1)),
                "{what}"
            );
        }
    }

    #[test]
    fn a_restored_snapshot_continues_exactly_like_an_uninterrupted_run() {
        let series = plant_day();
        let whole = run(&mut MachineState::default(), &[], &series);
        let mut first = MachineState::default();
        let mut events = run(&mut first, &[], &series[..500]);
        let snapshot = serde_json::to_string(&first).unwrap();
        let mut restored: MachineState = serde_json::from_str(&snapshot).unwrap();
        let tail: Vec<_> = series[500..].to_vec();
        let offset_fix = |mut e: AlertEvent| {
            e.offsets.iter_mut().for_each(|o| o.1 += 500);
            e
        };
        events.extend(run(&mut restored, &[], &tail).into_iter().map(offset_fix));
        assert_eq!(events, whole);
    }

    #[test]
    fn a_replacement_resets_the_metrics_detectors_once_in_order() {
        // Two quiet days, then the bearing is replaced: the temperature runs 8 degrees lower from then on.
        let mut series = noisy(3 * 288, 60.0, 0.5, 300_000);
        for x in series.iter_mut().skip(576) {
            x.value -= 8.0;
        }
        let series: Vec<_> = series.into_iter().map(|x| ("spindle_temp", x)).collect();
        let raised = |events: &[AlertEvent]| {
            events
                .iter()
                .filter(|e| e.transition == Transition::Raised)
                .count()
        };
        assert!(raised(&run(&mut MachineState::default(), &[], &series)) >= 1);
        let replaced = [Reset {
            at_ms: 576 * 300_000 - 60_000,
            machines: vec!["press-07".into()],
            metrics: Vec::new(),
        }];
        let with_resets = |state: &mut MachineState, from: usize, to: usize| {
            let settings = DetectionSettings::default();
            feed_under(state, &settings, &replaced, &series[from..to], from)
        };
        let whole = with_resets(&mut MachineState::default(), 0, series.len());
        assert_eq!(
            raised(&whole),
            0,
            "the new part is learnt afresh: {whole:?}"
        );
        // Restored after the reset, the state does not reset again: the same (no) alerts, the same state.
        let mut first = MachineState::default();
        with_resets(&mut first, 0, 700);
        let mut restored: MachineState =
            serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        assert!(with_resets(&mut restored, 700, series.len()).is_empty());
        let mut straight = MachineState::default();
        with_resets(&mut straight, 0, series.len());
        assert_eq!(
            serde_json::to_string(&restored).unwrap(),
            serde_json::to_string(&straight).unwrap()
        );
        // A reset of another machine or another metric changes nothing here.
        let elsewhere = [
            Reset {
                machines: vec!["lathe-02".into()],
                ..replaced[0].clone()
            },
            Reset {
                metrics: vec!["vibration".into()],
                ..replaced[0].clone()
            },
        ];
        let settings = DetectionSettings::default();
        let events = feed_under(
            &mut MachineState::default(),
            &settings,
            &elsewhere,
            &series,
            0,
        );
        assert!(raised(&events) >= 1);
    }

    #[test]
    fn other_settings_keep_what_the_default_rule_learned() {
        let series = plant_day();
        let feed =
            |state: &mut MachineState, settings: &DetectionSettings, from: usize, to: usize| {
                feed_under(state, settings, &[], &series[from..to], from)
            };
        let learned = |state: &MachineState| match state.view().conditions
            ["default:context:spindle_temp"]
            .get(&0)
            .map(|c| &c.detector)
        {
            Some(DetectorState::Context(c)) => c.level.n,
            other => panic!("{other:?}"),
        };
        let calm = DetectionSettings::default();
        let touchy = DetectionSettings {
            one_in: 1_000.0,
            ..DetectionSettings::default()
        };
        // Under other settings from reading 350 on, the context detector goes on counting from there...
        let mut changed = MachineState::default();
        feed(&mut changed, &calm, 0, 350);
        feed(&mut changed, &touchy, 350, 450);
        assert_eq!(learned(&changed), 450);
        // ...and judges as one that had the new settings all along, once both have seen the same readings.
        let mut along = MachineState::default();
        feed(&mut along, &touchy, 0, 450);
        assert_eq!(
            feed(&mut changed, &touchy, 450, 500),
            feed(&mut along, &touchy, 450, 500)
        );
        // Restored, the state goes on the same.
        let mut restored: MachineState =
            serde_json::from_str(&serde_json::to_string(&changed).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_value(&restored).unwrap(),
            serde_json::to_value(&changed).unwrap()
        );
        assert_eq!(
            feed(&mut restored, &touchy, 500, 700),
            feed(&mut changed, &touchy, 500, 700)
        );
    }

    #[test]
    fn late_readings_teach_but_do_not_alert() {
        let mut state = MachineState::default();
        let mut series = plant_day()[..300].to_vec();
        let late = (
            "spindle_temp",
            Sample {
                ts_ms: 10 * 300_000,
                value: 500.0,
            },
        );
        series.push(late);
        let events = run(&mut state, &[], &series);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn nan_and_infinities_never_reach_a_detector() {
        let mut state = MachineState::default();
        let mut series = plant_day()[..400].to_vec();
        for (i, v) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY]
            .iter()
            .enumerate()
        {
            series[300 + i].1.value = *v;
        }
        let events = run(&mut state, &[], &series);
        assert!(events
            .iter()
            .all(|e| e.observed.is_finite() && e.score.is_finite()));
        let mut clean = MachineState::default();
        let without: Vec<_> = series
            .iter()
            .filter(|s| s.1.value.is_finite())
            .copied()
            .collect();
        // The same alerts as without those readings, apart from the readings' positions.
        let strip = |e: &AlertEvent| (e.transition, e.event_time_ms);
        assert_eq!(
            events.iter().map(strip).collect::<Vec<_>>(),
            run(&mut clean, &[], &without)
                .iter()
                .map(strip)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_alert_left_open_by_a_retired_default_detector_resolves() {
        let ewma: Rule = serde_json::from_str(
            r#"{"id": "default:ewma:spindle_temp", "name": "ewma on spindle_temp",
                "when": {"metric": "spindle_temp", "detector": "ewma"}, "clear_after": 96}"#,
        )
        .unwrap();
        let series = plant_day();
        let mut state = MachineState::default();
        let before = run(&mut state, std::slice::from_ref(&ewma), &series[..401]);
        assert_eq!(
            before.last().map(|e| e.transition),
            Some(Transition::Raised)
        );
        // Restored by today's code, where that rule is no longer a default.
        let mut restored: MachineState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        let after = run(&mut restored, &[], &series[401..403]);
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(after[0].transition, Transition::Resolved);
        assert_eq!(after[0].alert_id, before[before.len() - 1].alert_id);
        assert!(!restored.phases.contains_key("default:ewma:spindle_temp"));
    }
}
