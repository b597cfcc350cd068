//! OPC-UA's part of a definition: the session settings (the `opcua` section) and the points, each a
//! node id and the (machine, metric) its value feeds.

use serde::{Deserialize, Serialize};

use crate::source::{FieldError, Point};

/// How an OPC-UA client authenticates.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "type")]
pub enum OpcUaAuth {
    /// No user identity.
    Anonymous,
    /// User name and password.
    UserPassword {
        /// The user name.
        username: String,
        /// The password; never shown by the API.
        password: String,
    },
}

/// Shows the user name, never the password (settings reach logs through `Debug`).
impl std::fmt::Debug for OpcUaAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpcUaAuth::Anonymous => f.write_str("Anonymous"),
            OpcUaAuth::UserPassword { username, .. } => f
                .debug_struct("UserPassword")
                .field("username", username)
                .field("password", &"<hidden>")
                .finish(),
        }
    }
}

/// OPC-UA session settings: the `opcua` section of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpcUaSettings {
    /// Security policy: `None`, `Basic256Sha256`, `Aes128_Sha256_RsaOaep` or `Aes256_Sha256_RsaPss`.
    pub security_policy: String,
    /// Message security mode: `None`, `Sign` or `SignAndEncrypt`.
    pub security_mode: String,
    /// User identity.
    pub auth: OpcUaAuth,
    /// Receive changes through a subscription with monitored items instead of periodic reads; the
    /// polling interval is then the publishing and sampling interval.
    pub subscribe: bool,
}

impl Default for OpcUaSettings {
    fn default() -> Self {
        Self {
            security_policy: "None".into(),
            security_mode: "None".into(),
            auth: OpcUaAuth::Anonymous,
            subscribe: false,
        }
    }
}

/// Security policies the client offers.
pub const SECURITY_POLICIES: &[&str] = &[
    "None",
    "Basic256Sha256",
    "Aes128_Sha256_RsaOaep",
    "Aes256_Sha256_RsaPss",
];

/// Message security modes.
pub const SECURITY_MODES: &[&str] = &["None", "Sign", "SignAndEncrypt"];

/// One OPC-UA variable and the (machine, metric) it feeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaPoint {
    /// Machine the value belongs to.
    pub machine: String,
    /// Metric name.
    pub metric: String,
    /// Node id in the standard text form: `ns=2;s=Line1.Temp`, `ns=3;i=1001`, `i=2258`,
    /// `ns=1;g=<uuid>` or `ns=1;b=<base64>`.
    pub node_id: String,
    /// The reading is `value * scale + offset`.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling.
    #[serde(default)]
    pub offset: f64,
}

fn default_scale() -> f64 {
    1.0
}

impl Point for OpcUaPoint {
    fn target(&self) -> (&str, &str) {
        (&self.machine, &self.metric)
    }

    fn check(&self, field: &str, errors: &mut Vec<FieldError>) {
        if let Err(reason) = check_node_id(&self.node_id) {
            errors.push(FieldError::new(format!("{field}.node_id"), reason));
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            errors.push(FieldError::new(
                format!("{field}.scale"),
                "must be a finite number other than 0",
            ));
        }
        if !self.offset.is_finite() {
            errors.push(FieldError::new(
                format!("{field}.offset"),
                "must be a finite number",
            ));
        }
    }
}

/// Checks the text form of a node id.
pub fn check_node_id(text: &str) -> Result<(), String> {
    let usage = "use `ns=<namespace>;i=<number>`, `ns=<namespace>;s=<name>`, `;g=<guid>` or `;b=<base64>` (ns= may be left out for namespace 0)";
    let (namespace, rest) = match text.strip_prefix("ns=") {
        Some(rest) => {
            let Some((ns, rest)) = rest.split_once(';') else {
                return Err(format!(
                    "`{text}` has no identifier after the namespace; {usage}"
                ));
            };
            let Ok(ns) = ns.parse::<u16>() else {
                return Err(format!("namespace `{ns}` is not a number from 0 to 65535"));
            };
            (ns, rest)
        }
        None => (0, text),
    };
    let Some((kind, id)) = rest.split_once('=') else {
        return Err(format!("`{text}` is not a node id; {usage}"));
    };
    // Namespace 0 with a zero number or the nil GUID is the null node id, which names no node.
    let null = namespace == 0
        && match kind {
            "i" => id.parse::<u32>() == Ok(0),
            "g" => uuid::Uuid::parse_str(id).is_ok_and(|g| g.is_nil()),
            _ => false,
        };
    if null {
        return Err(format!(
            "`{text}` is the null node id, which names no node; {usage}"
        ));
    }
    let ok = match kind {
        "i" => id.parse::<u32>().is_ok(),
        "s" | "b" => !id.is_empty(),
        "g" => uuid::Uuid::parse_str(id).is_ok(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{text}` is not a node id; {usage}"))
    }
}

/// Checks the session settings; `field` is the section's path (`opcua`).
pub fn check_settings(settings: &OpcUaSettings, field: &str, errors: &mut Vec<FieldError>) {
    let policy_ok = SECURITY_POLICIES.contains(&settings.security_policy.as_str());
    let mode_ok = SECURITY_MODES.contains(&settings.security_mode.as_str());
    if !policy_ok {
        errors.push(FieldError::new(
            format!("{field}.security_policy"),
            format!("must be one of {}", SECURITY_POLICIES.join(", ")),
        ));
    }
    if !mode_ok {
        errors.push(FieldError::new(
            format!("{field}.security_mode"),
            format!("must be one of {}", SECURITY_MODES.join(", ")),
        ));
    }
    let none_policy = settings.security_policy == "None";
    let none_mode = settings.security_mode == "None";
    if policy_ok && mode_ok && none_policy != none_mode {
        errors.push(FieldError::new(
            format!("{field}.security_mode"),
            "security policy None goes with mode None, and only with it",
        ));
    }
    if let OpcUaAuth::UserPassword { username, .. } = &settings.auth {
        if username.is_empty() {
            errors.push(FieldError::new(
                format!("{field}.auth.username"),
                "must not be empty",
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        let auth = OpcUaAuth::UserPassword {
            username: "plant".into(),
            password: "s3cret-Pa55".into(),
        };
        let settings = OpcUaSettings {
            auth,
            ..OpcUaSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("plant") && !shown.contains("s3cret-Pa55"),
            "{shown}"
        );
    }

    #[test]
    fn accepts_the_standard_forms() {
        for id in [
            "ns=2;s=Line1.Temp",
            "ns=3;i=1001",
            "i=2258",
            "ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63",
            "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
        ] {
            assert_eq!(check_node_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn explains_bad_node_ids() {
        for id in [
            "",
            "Temp",
            "ns=x;s=a",
            "ns=2",
            "ns=2;i=abc",
            "ns=2;q=1",
            "ns=2;s=",
            "g=nope",
        ] {
            assert!(check_node_id(id).is_err(), "{id}");
        }
        for null in [
            "i=0",
            "ns=0;i=0",
            "ns=0;g=00000000-0000-0000-0000-000000000000",
        ] {
            assert!(
                check_node_id(null).unwrap_err().contains("null node id"),
                "{null}"
            );
        }
        assert_eq!(
            check_node_id("ns=2;i=0"),
            Ok(()),
            "zero names a node outside namespace 0"
        );
        assert!(check_node_id("ns=70000;i=1")
            .unwrap_err()
            .contains("namespace"));
    }

    #[test]
    fn policy_and_mode_go_together() {
        let mut errors = Vec::new();
        let settings = OpcUaSettings {
            security_policy: "Basic256Sha256".into(),
            security_mode: "None".into(),
            ..OpcUaSettings::default()
        };
        check_settings(&settings, "opcua", &mut errors);
        assert_eq!(errors.len(), 1);
        errors.clear();
        check_settings(&OpcUaSettings::default(), "opcua", &mut errors);
        assert!(errors.is_empty());
    }
}
