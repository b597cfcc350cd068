//! What a device protocol implements: its name, its settings and point types, their checks, and how to
//! open a device. A protocol is a folder (`modbus/`, `opcua/`) with a unit type implementing
//! [`Protocol`], registered by one line in [`crate::protocols`]; the shared code knows it only through
//! this trait.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::device::{Connection, Device};
use super::error::FieldError;

/// A device protocol.
///
/// A definition is `protocol`, `endpoint`, `poll_interval_ms`, `timeout_ms`, an optional settings
/// section named [`Protocol::SETTINGS_FIELD`], and `points`. The shared code reads and checks the common
/// fields, reports serde's own message for a malformed document, numbers the points (`points[3]`),
/// checks every point's machine and metric and refuses a (machine, metric) mapped twice; the protocol
/// checks the rest.
pub trait Protocol: Debug + Send + Sync + 'static {
    /// The registered name: `protocol` in definitions and stored rows, and on the readings topic.
    /// 1 to 32 of `a-z`, `0-9` and `_`, starting with a letter (checked when the code is built).
    const NAME: &'static str;

    /// The top-level field of the settings section (e.g. `opcua`), when the protocol has settings.
    const SETTINGS_FIELD: Option<&'static str> = None;

    /// The settings section; `()` for a protocol without one. Absent means `Default`.
    type Settings: Serialize + DeserializeOwned + Default + Clone + Debug + Send + Sync + 'static;

    /// One entry of the point map.
    type Point: Point;

    /// Checks the endpoint; the reason is reported at `endpoint`.
    fn check_endpoint(&self, endpoint: &str) -> Result<(), String>;

    /// Checks the settings; `field` is the section's path (e.g. `opcua`).
    fn check_settings(
        &self,
        _settings: &Self::Settings,
        _field: &str,
        _errors: &mut Vec<FieldError>,
    ) {
    }

    /// JSON pointers, inside the settings section, of its secrets (e.g. `/auth/password`): sealed before
    /// a definition is stored ([`super::secrets`]), opened before it is polled, hidden when shown.
    const SECRETS: &'static [&'static str] = &[];

    /// Hides secrets in the settings section (as JSON) before a definition is shown: by default every
    /// [`Protocol::SECRETS`] becomes `null`.
    fn redact_settings(&self, section: &mut Value) {
        for pointer in Self::SECRETS {
            if let Some(secret) = section.pointer_mut(pointer) {
                *secret = Value::Null;
            }
        }
    }

    /// A device for a checked definition.
    fn open(
        &self,
        connection: Connection,
        settings: &Self::Settings,
        points: &[Self::Point],
    ) -> Box<dyn Device>;
}

/// One entry of a protocol's point map: where a value lives on the device, and what it feeds.
pub trait Point: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The (machine, metric) the value feeds.
    fn target(&self) -> (&str, &str);

    /// Checks the protocol's part of the point; `field` is its path (`points[3]`). The machine and
    /// metric are checked by the shared code first.
    fn check(&self, field: &str, errors: &mut Vec<FieldError>);
}
