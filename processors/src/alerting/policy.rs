//! Escalation policies and silences as plain values: which policy an alert follows (the first whose
//! matchers hold, like Alertmanager's routes), how its alerts are grouped, and when each step fires.

use haltless_schemas::alerts::Severity;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an alert is matched on: its severity, rule and machine (with the machine's tags and site).
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// The alert's severity.
    pub severity: Severity,
    /// The rule's id.
    pub rule_id: &'a str,
    /// The machine's name.
    pub machine: &'a str,
    /// The machine's tags.
    pub tags: &'a [String],
    /// The machine's site, when it has one.
    pub site: Option<&'a str>,
}

/// Conditions an alert must meet, all of them; an empty set matches every alert. Every value (tags, site,
/// rules, machines) is 1 to 200 bytes, and the lists name at most 100 values together (a rule across
/// fields the schema leaves to the server: each list alone takes 100).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Matchers {
    /// The least severity (`info`, `warning`, `critical`).
    #[schema(value_type = Option<String>, pattern = "^(info|warning|critical)$")]
    pub min_severity: Option<Severity>,
    /// Tags the machine must all carry.
    #[schema(value_type = Vec<MatcherValue>, max_items = 100)]
    pub tags: Vec<String>,
    /// The machine's site.
    #[schema(value_type = Option<MatcherValue>)]
    pub site: Option<String>,
    /// Rule ids, any of them (empty: any rule).
    #[schema(value_type = Vec<MatcherValue>, max_items = 100)]
    pub rules: Vec<String>,
    /// Machine names, any of them (empty: any machine).
    #[schema(value_type = Vec<MatcherValue>, max_items = 100)]
    pub machines: Vec<String>,
}

impl Matchers {
    /// Whether the alert meets every condition.
    pub fn matches(&self, l: &Labels<'_>) -> bool {
        self.min_severity.is_none_or(|min| l.severity >= min)
            && self.tags.iter().all(|t| l.tags.contains(t))
            && self.site.as_deref().is_none_or(|s| l.site == Some(s))
            && (self.rules.is_empty() || self.rules.iter().any(|r| r == l.rule_id))
            && (self.machines.is_empty() || self.machines.iter().any(|m| m == l.machine))
    }

    /// The problems of a matcher set, for a 422.
    pub fn check(&self) -> Result<(), String> {
        let texts = self.tags.iter().chain(&self.rules).chain(&self.machines);
        if texts.clone().count() > 100 {
            return Err("matchers name at most 100 tags, rules and machines".into());
        }
        if texts
            .chain(&self.site)
            .any(|t| t.is_empty() || t.len() > MAX_VALUE_BYTES)
        {
            return Err("every matcher value is 1 to 200 characters".into());
        }
        Ok(())
    }
}

/// A matcher's value: 1 to 200 bytes (the schema counts characters; the server, bytes of UTF-8).
struct MatcherValue;

impl utoipa::PartialSchema for MatcherValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("1 to 200 bytes of UTF-8."))
            .min_length(Some(1))
            .max_length(Some(MAX_VALUE_BYTES))
            .into()
    }
}

impl utoipa::ToSchema for MatcherValue {}

/// The longest matcher value, in bytes.
const MAX_VALUE_BYTES: usize = 200;

/// What alerts are grouped by: alerts of one policy with the same values are one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The machine.
    Machine,
    /// The machine's site.
    Site,
    /// The rule.
    Rule,
}

/// A user role, as a step's target: every active user who has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetRole {
    /// Admins.
    Admin,
    /// Operators.
    Operator,
    /// Viewers.
    Viewer,
}

impl TargetRole {
    /// As stored with users.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetRole::Admin => "admin",
            TargetRole::Operator => "operator",
            TargetRole::Viewer => "viewer",
        }
    }
}

/// One escalation step: after `delay_secs` (from the group's first notice, or from the step before),
/// notify `channels`, and the people named by `users` and `roles` on the browsers they registered with
/// the step's push channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Seconds after the step before (the first step: after the group wait), at most a week.
    #[serde(default)]
    #[schema(maximum = 604800)]
    pub delay_secs: u32,
    /// The channels notified, 1 to 20 of the tenant's. A push channel reaches the people the step
    /// names, or, when it names none, everyone who subscribed with it.
    #[schema(min_items = 1, max_items = 20)]
    pub channels: Vec<Uuid>,
    /// Users of the tenant told through the step's push channels, at most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub users: Vec<Uuid>,
    /// Roles whose users are told through the step's push channels.
    #[serde(default)]
    pub roles: Vec<TargetRole>,
}

impl Step {
    /// Whether the step names people (users or roles).
    pub fn names_people(&self) -> bool {
        !self.users.is_empty() || !self.roles.is_empty()
    }
}

/// An escalation policy as stored and as the API takes it. A step naming people (`users`, `roles`) needs
/// a push channel among its `channels` (a rule across fields the schema leaves to the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// A name, 1 to 100 characters, not only blanks (surrounding blanks are trimmed); unique in the
    /// tenant.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// Which alerts it takes; policies are tried in `position` order, the first match wins.
    #[serde(default)]
    pub matchers: Matchers,
    /// Order among the tenant's policies (lowest first).
    #[serde(default)]
    pub position: i32,
    /// The steps, in order: 1 to 10.
    #[schema(min_items = 1, max_items = 10)]
    pub steps: Vec<Step>,
    /// Once the last step fired, repeat it every so many seconds (1 to a week) until the alert is
    /// acknowledged, snoozed or resolved; absent: no repeat.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    pub repeat_secs: Option<u32>,
    /// What alerts are grouped by (default: the machine).
    #[serde(default = "default_group_by")]
    pub group_by: Vec<GroupBy>,
    /// How long a new group waits for more alerts before its first notice (default 30 s, at most a
    /// week).
    #[serde(default = "default_group_wait")]
    #[schema(maximum = 604800)]
    pub group_wait_secs: u32,
    /// Once a group has notified, how long alerts that join it wait, together, before they are told
    /// (default 300 s, like Alertmanager's `group_interval`; at most a week).
    #[serde(default = "default_group_interval")]
    #[schema(maximum = 604800)]
    pub group_interval_secs: u32,
    /// Whether the channels that were told of an alert hear of its resolution (default yes).
    #[serde(default = "yes")]
    pub notify_resolved: bool,
}

fn default_group_by() -> Vec<GroupBy> {
    vec![GroupBy::Machine]
}

fn default_group_wait() -> u32 {
    30
}

fn default_group_interval() -> u32 {
    300
}

fn yes() -> bool {
    true
}

/// The most steps a policy has.
pub const MAX_STEPS: usize = 10;
/// The longest delay, repeat or wait: a week.
pub const MAX_SECS: u32 = 7 * 24 * 3600;

impl PolicySpec {
    /// The problems of a policy, for a 422 (the channels' existence is the caller's to check).
    pub fn check(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.name.trim().chars().count()) {
            return Err("name must be 1 to 100 characters".into());
        }
        self.matchers.check()?;
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(format!("steps: 1 to {MAX_STEPS} steps"));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if s.channels.is_empty() || s.channels.len() > 20 {
                return Err(format!("steps[{i}].channels: 1 to 20 channels"));
            }
            if s.delay_secs > MAX_SECS {
                return Err(format!("steps[{i}].delay_secs: at most {MAX_SECS}"));
            }
            if s.users.len() > 100 {
                return Err(format!("steps[{i}].users: at most 100 users"));
            }
        }
        if self.repeat_secs.is_some_and(|r| r == 0 || r > MAX_SECS) {
            return Err(format!("repeat_secs: 1 to {MAX_SECS}"));
        }
        if self.group_wait_secs > MAX_SECS {
            return Err(format!("group_wait_secs: at most {MAX_SECS}"));
        }
        if self.group_interval_secs > MAX_SECS {
            return Err(format!("group_interval_secs: at most {MAX_SECS}"));
        }
        Ok(())
    }

    /// The key of the group an alert joins: the values of `group_by`, in a stable form.
    pub fn group_key(&self, l: &Labels<'_>) -> String {
        self.group_by
            .iter()
            .map(|g| match g {
                GroupBy::Machine => format!("machine={}", l.machine),
                GroupBy::Site => format!("site={}", l.site.unwrap_or("")),
                GroupBy::Rule => format!("rule={}", l.rule_id),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The step that firing number `n` (0, 1, ...) notifies, and how many seconds after it the next
    /// firing is due (`None`: none follows). Past the last step, the last step repeats every
    /// `repeat_secs`.
    pub fn firing(&self, n: usize) -> Option<(&Step, Option<u32>)> {
        let last = self.steps.len().checked_sub(1)?;
        let step = self.steps.get(n.min(last))?;
        if n > last && self.repeat_secs.is_none() {
            return None;
        }
        let next = match self.steps.get(n + 1) {
            Some(s) => Some(s.delay_secs),
            None => self.repeat_secs,
        };
        Some((step, next))
    }

    /// Seconds from an alert's arrival to its first firing.
    pub fn first_delay_secs(&self) -> u32 {
        self.group_wait_secs + self.first_step_delay()
    }

    /// Seconds from a group's last notice to the first firing of an alert that joined it since.
    pub fn joining_delay_secs(&self) -> u32 {
        self.group_interval_secs + self.first_step_delay()
    }

    fn first_step_delay(&self) -> u32 {
        self.steps.first().map_or(0, |s| s.delay_secs)
    }
}

/// An inhibition rule: while an open alert meets `source`, alerts that meet `target` and share the
/// `equal` labels with it notify nobody (a machine that lost its power says so once, not through every
/// sensor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InhibitionSpec {
    /// A name, 1 to 100 characters, not only blanks (surrounding blanks are trimmed); unique in the
    /// tenant.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// The alerts that inhibit.
    pub source: Matchers,
    /// The alerts they mute.
    pub target: Matchers,
    /// The labels source and target must share (default: the machine).
    #[serde(default = "default_group_by")]
    pub equal: Vec<GroupBy>,
}

impl InhibitionSpec {
    /// The problems of a rule, for a 422.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.name.trim().chars().count()) {
            return Err("name must be 1 to 100 characters".into());
        }
        self.source.check().map_err(|e| format!("source: {e}"))?;
        self.target.check().map_err(|e| format!("target: {e}"))
    }

    /// Whether an open alert with labels `source` mutes an alert with labels `target`.
    pub fn inhibits(&self, source: &Labels<'_>, target: &Labels<'_>) -> bool {
        self.source.matches(source)
            && self.target.matches(target)
            && self.equal.iter().all(|g| match g {
                GroupBy::Machine => source.machine == target.machine,
                GroupBy::Site => source.site.is_some() && source.site == target.site,
                GroupBy::Rule => source.rule_id == target.rule_id,
            })
    }
}

/// The first policy, in order, whose matchers hold.
pub fn choose<'a, P>(
    policies: &'a [(P, PolicySpec)],
    l: &Labels<'_>,
) -> Option<&'a (P, PolicySpec)> {
    policies.iter().find(|(_, p)| p.matchers.matches(l))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The document states the limits [`PolicySpec::check`] applies.
    #[test]
    fn the_schema_states_the_checked_limits() {
        use utoipa::PartialSchema;
        let policy = serde_json::to_value(PolicySpec::schema()).unwrap();
        let step = serde_json::to_value(Step::schema()).unwrap();
        assert_eq!(policy["properties"]["steps"]["maxItems"], MAX_STEPS);
        for secs in ["repeat_secs", "group_wait_secs", "group_interval_secs"] {
            assert_eq!(policy["properties"][secs]["maximum"], MAX_SECS, "{secs}");
        }
        assert_eq!(step["properties"]["delay_secs"]["maximum"], MAX_SECS);
        let value = serde_json::to_value(MatcherValue::schema()).unwrap();
        assert_eq!(value["maxLength"], MAX_VALUE_BYTES);
    }

    fn labels<'a>(severity: Severity, tags: &'a [String]) -> Labels<'a> {
        Labels {
            severity,
            rule_id: "default:temp",
            machine: "press-07",
            tags,
            site: Some("north"),
        }
    }

    fn policy(matchers: Matchers) -> PolicySpec {
        serde_json::from_value(serde_json::json!({
            "name": "p", "steps": [{"channels": [Uuid::nil()]}]
        }))
        .map(|p: PolicySpec| PolicySpec { matchers, ..p })
        .unwrap()
    }

    #[test]
    fn matchers_need_every_condition() {
        let tags = vec!["line-1".to_owned(), "press".to_owned()];
        let l = labels(Severity::Warning, &tags);
        assert!(Matchers::default().matches(&l));
        let m = |json| serde_json::from_value::<Matchers>(json).unwrap();
        assert!(m(serde_json::json!({"min_severity": "warning", "tags": ["press"]})).matches(&l));
        assert!(!m(serde_json::json!({"min_severity": "critical"})).matches(&l));
        assert!(!m(serde_json::json!({"tags": ["press", "oven"]})).matches(&l));
        assert!(!m(serde_json::json!({"site": "south"})).matches(&l));
        assert!(
            m(serde_json::json!({"rules": ["x", "default:temp"], "site": "north"})).matches(&l)
        );
        assert!(!m(serde_json::json!({"machines": ["oven-05"]})).matches(&l));
    }

    #[test]
    fn the_first_matching_policy_wins() {
        let tags = vec![];
        let critical = Matchers {
            min_severity: Some(Severity::Critical),
            ..Matchers::default()
        };
        let policies = vec![
            (1, policy(critical)),
            (2, policy(Matchers::default())),
            (3, policy(Matchers::default())),
        ];
        let pick = |s| choose(&policies, &labels(s, &tags)).map(|(id, _)| *id);
        assert_eq!(pick(Severity::Critical), Some(1));
        assert_eq!(pick(Severity::Info), Some(2));
    }

    #[test]
    fn steps_fire_in_order_then_repeat_the_last() {
        let mut p: PolicySpec = serde_json::from_value(serde_json::json!({
            "name": "two steps", "group_wait_secs": 5,
            "steps": [{"delay_secs": 1, "channels": [Uuid::nil()]}, {"delay_secs": 60, "channels": [Uuid::max()]}]
        }))
        .unwrap();
        assert_eq!(p.first_delay_secs(), 6);
        let fired = |p: &PolicySpec, n| p.firing(n).map(|(s, next)| (s.channels[0], next));
        assert_eq!(fired(&p, 0), Some((Uuid::nil(), Some(60))));
        assert_eq!(fired(&p, 1), Some((Uuid::max(), None)));
        assert_eq!(fired(&p, 2), None);
        p.repeat_secs = Some(300);
        assert_eq!(fired(&p, 1), Some((Uuid::max(), Some(300))));
        assert_eq!(fired(&p, 7), Some((Uuid::max(), Some(300))));
    }

    #[test]
    fn group_keys_follow_group_by() {
        let tags = vec![];
        let l = labels(Severity::Info, &tags);
        let mut p = policy(Matchers::default());
        assert_eq!(p.group_key(&l), "machine=press-07");
        p.group_by = vec![GroupBy::Site, GroupBy::Rule];
        assert_eq!(p.group_key(&l), "site=north,rule=default:temp");
    }

    #[test]
    fn an_inhibiting_alert_mutes_its_machines_matching_alerts_only() {
        let rule: InhibitionSpec = serde_json::from_value(serde_json::json!({
            "name": "power loss", "source": {"rules": ["power"]}, "target": {"min_severity": "info"}}))
        .unwrap();
        let tags = vec![];
        let power = Labels {
            rule_id: "power",
            ..labels(Severity::Critical, &tags)
        };
        let temp = labels(Severity::Warning, &tags);
        let elsewhere = Labels {
            machine: "oven-05",
            ..temp
        };
        assert!(rule.inhibits(&power, &temp));
        assert!(!rule.inhibits(&power, &elsewhere), "another machine");
        assert!(!rule.inhibits(&temp, &power), "not a source");
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        let mut p = policy(Matchers::default());
        assert!(p.check().is_ok());
        p.steps.clear();
        assert!(p.check().unwrap_err().contains("steps"));
        let mut p = policy(Matchers::default());
        p.repeat_secs = Some(0);
        assert!(p.check().unwrap_err().contains("repeat_secs"));
        p.repeat_secs = None;
        p.name = " ".into();
        assert!(p.check().unwrap_err().contains("name"));
    }
}
