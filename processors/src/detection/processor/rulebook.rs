//! Rules as events: every change is a versioned record on the rules topic, so a replay sees the rules that
//! were in force. A version applies to readings whose event time is at or after its `effective_from_ms`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::detection::logic::rules::Rule;

/// One change of one rule: a record of the rules topic, keyed `tenant/rule_id/version` so that compaction
/// keeps every version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleChange {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// Version number, growing per rule.
    pub version: i64,
    /// Event time from which this version applies (ms).
    pub effective_from_ms: i64,
    /// Machine names it applies to; every machine of the tenant when empty.
    #[serde(default)]
    pub machines: Vec<String>,
    /// The rule; `deleted` versions keep its id only.
    pub rule: Rule,
    /// The rule was deleted from `effective_from_ms` on.
    #[serde(default)]
    pub deleted: bool,
}

impl RuleChange {
    /// The record key on the rules topic.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.tenant_id, self.rule.id, self.version)
    }
}

/// A machine's rules, with how many of its tenant's changes they reflect.
type Resolved = (usize, Arc<Vec<Rule>>);

/// Every rule version seen, by tenant.
#[derive(Debug, Default)]
pub struct RuleBook {
    changes: HashMap<Uuid, Vec<RuleChange>>,
    /// The rules of a (tenant, machine) given how many of the tenant's changes are in force: they stay the
    /// same between two changes' effective times, so most readings reuse them.
    resolved: HashMap<Uuid, HashMap<String, Resolved>>,
}

impl RuleBook {
    /// Records a change (idempotent: a version seen twice is kept once).
    pub fn apply(&mut self, change: RuleChange) {
        let list = self.changes.entry(change.tenant_id).or_default();
        if list
            .iter()
            .any(|c| c.rule.id == change.rule.id && c.version == change.version)
        {
            return;
        }
        list.push(change);
        list.sort_by(|a, b| {
            (a.effective_from_ms, a.version).cmp(&(b.effective_from_ms, b.version))
        });
        self.resolved.clear();
    }

    /// The rules of `machine` of `tenant` in force at event time `ts_ms`.
    pub fn rules_for(&mut self, tenant: Uuid, machine: &str, ts_ms: i64) -> Arc<Vec<Rule>> {
        let Some(list) = self.changes.get(&tenant) else {
            return Arc::default();
        };
        let in_force = list.partition_point(|c| c.effective_from_ms <= ts_ms);
        let cached = self.resolved.get(&tenant).and_then(|m| m.get(machine));
        if let Some((_, rules)) = cached.filter(|(n, _)| *n == in_force) {
            return rules.clone();
        }
        let rules = Arc::new(Self::resolve(&list[..in_force], machine));
        self.resolved
            .entry(tenant)
            .or_default()
            .insert(machine.to_owned(), (in_force, rules.clone()));
        rules
    }

    /// The rules of `machine` after `changes`, sorted by id.
    fn resolve(changes: &[RuleChange], machine: &str) -> Vec<Rule> {
        let mut latest: HashMap<&str, &RuleChange> = HashMap::new();
        for c in changes {
            latest.insert(c.rule.id.as_str(), c);
        }
        let mut rules: Vec<Rule> = latest
            .into_values()
            .filter(|c| {
                !c.deleted && (c.machines.is_empty() || c.machines.iter().any(|m| m == machine))
            })
            .map(|c| c.rule.clone())
            .collect();
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        rules
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn change(rule: &str, version: i64, from: i64, machines: &[&str], deleted: bool) -> RuleChange {
        RuleChange {
            tenant_id: Uuid::from_u128(1),
            version,
            effective_from_ms: from,
            machines: machines.iter().map(|m| m.to_string()).collect(),
            rule: serde_json::from_value(serde_json::json!({
                "id": rule, "name": format!("{rule} v{version}"),
                "when": {"metric": "t", "detector": "above", "value": version * 10}}))
            .unwrap(),
            deleted,
        }
    }

    #[test]
    fn a_reading_sees_the_versions_in_force_at_its_event_time() {
        let mut book = RuleBook::default();
        book.apply(change("hot", 2, 200, &[], false));
        book.apply(change("hot", 1, 100, &[], false));
        book.apply(change("hot", 3, 300, &[], true));
        book.apply(change("m2-only", 1, 0, &["m2"], false));
        book.apply(change("hot", 1, 100, &[], false)); // redelivered
        let tenant = Uuid::from_u128(1);
        let mut names = |ts| {
            book.rules_for(tenant, "m1", ts)
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert!(names(99).is_empty());
        assert_eq!(names(100), ["hot v1"]);
        assert_eq!(names(250), ["hot v2"]);
        assert!(names(300).is_empty(), "deleted");
        assert_eq!(book.rules_for(tenant, "m2", 150).len(), 2);
        assert!(
            book.rules_for(Uuid::from_u128(2), "m1", 150).is_empty(),
            "other tenants see nothing"
        );
    }
}
