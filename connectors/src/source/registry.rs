//! How the shared code holds protocols: a typed [`Protocol`] seen as a `dyn` [`ErasedProtocol`], the
//! per-source part it reads ([`DeviceConfig`]: its settings and points), and a list of protocols
//! ([`Protocols`]). The list the platform uses is [`crate::protocols::PROTOCOLS`].

use std::collections::HashSet;
use std::fmt::Debug;
use std::marker::PhantomData;

use haltless_schemas::readings::ProtocolName;
use haltless_schemas::Source;
use serde::Deserialize as _;
use serde_json::Value;

use super::device::{Connection, Device};
use super::error::FieldError;
use super::protocol::{Point, Protocol};
use crate::gateway::validate::valid_name;

/// A protocol as the shared code sees it; every [`Protocol`] is one.
pub trait ErasedProtocol: Debug + Send + Sync {
    /// The registered name (`modbus_tcp`, `opcua`, ...).
    fn name(&self) -> &'static str;

    /// How batches read with this protocol are labelled on the readings topic.
    fn source(&self) -> Source;

    /// The top-level field of the protocol's settings section, if it has one.
    fn settings_field(&self) -> Option<&'static str>;

    /// Checks the endpoint; the reason is reported at `endpoint`.
    fn check_endpoint(&self, endpoint: &str) -> Result<(), String>;

    /// JSON pointers of the secrets in a whole definition (e.g. `/opcua/auth/password`).
    fn secret_pointers(&self) -> Vec<String>;

    /// Whether `section` has the shape of the settings (serde's message when not).
    fn check_settings_shape(&self, section: &Value) -> Result<(), String>;

    /// Reads and checks the settings section (absent: the defaults) and the point map, adding every
    /// problem to `errors`. The result is only meaningful when no problem was added.
    fn build(
        &'static self,
        section: Option<Value>,
        points: Vec<Value>,
        errors: &mut Vec<FieldError>,
    ) -> Box<dyn DeviceConfig>;
}

/// One source's protocol part: its settings and point map, read by its protocol.
pub trait DeviceConfig: Debug + Send + Sync {
    /// Every (machine, metric) the points feed, in point order.
    fn targets(&self) -> Vec<(&str, &str)>;

    /// The settings section (when the protocol has one) and `points`, as JSON fields.
    fn to_fields(&self) -> Result<Vec<(&'static str, Value)>, serde_json::Error>;

    /// Hides secrets of the settings in `doc`, the definition as JSON.
    fn redact(&self, doc: &mut Value);

    /// A device reading these points.
    fn open(&self, connection: Connection) -> Box<dyn Device>;

    /// A copy.
    fn clone_box(&self) -> Box<dyn DeviceConfig>;
}

impl Clone for Box<dyn DeviceConfig> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// A list of protocols, in the order messages name them.
#[derive(Debug, Clone, Copy)]
pub struct Protocols(&'static [&'static dyn ErasedProtocol]);

impl Protocols {
    /// The list of `protocols`.
    pub const fn new(protocols: &'static [&'static dyn ErasedProtocol]) -> Self {
        Self(protocols)
    }

    /// Every protocol.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn ErasedProtocol> {
        self.0.iter().copied()
    }

    /// The protocol registered as `name`.
    pub fn get(&self, name: &str) -> Option<&'static dyn ErasedProtocol> {
        self.iter().find(|p| p.name() == name)
    }

    /// The protocol whose settings section is `field`.
    pub fn by_settings_field(&self, field: &str) -> Option<&'static dyn ErasedProtocol> {
        self.iter().find(|p| p.settings_field() == Some(field))
    }

    /// Every registered name.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|p| p.name()).collect()
    }
}

/// A protocol's name as the readings topic carries it, checked when the code is built.
struct TopicName<P>(PhantomData<P>);

impl<P: Protocol> TopicName<P> {
    const NAME: ProtocolName = ProtocolName::from_static(P::NAME);
}

impl<P: Protocol> ErasedProtocol for P {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn source(&self) -> Source {
        Source::Device(TopicName::<P>::NAME)
    }

    fn settings_field(&self) -> Option<&'static str> {
        P::SETTINGS_FIELD
    }

    fn check_endpoint(&self, endpoint: &str) -> Result<(), String> {
        Protocol::check_endpoint(self, endpoint)
    }

    fn secret_pointers(&self) -> Vec<String> {
        match P::SETTINGS_FIELD {
            Some(field) => P::SECRETS.iter().map(|p| format!("/{field}{p}")).collect(),
            None => Vec::new(),
        }
    }

    fn check_settings_shape(&self, section: &Value) -> Result<(), String> {
        P::Settings::deserialize(section)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn build(
        &'static self,
        section: Option<Value>,
        raw: Vec<Value>,
        errors: &mut Vec<FieldError>,
    ) -> Box<dyn DeviceConfig> {
        let settings = match section.map(serde_json::from_value::<P::Settings>) {
            None => P::Settings::default(),
            Some(Ok(settings)) => settings,
            Some(Err(e)) => {
                errors.push(FieldError::new("source", e.to_string()));
                P::Settings::default()
            }
        };
        if let Some(field) = P::SETTINGS_FIELD {
            self.check_settings(&settings, field, errors);
        }
        let mut points = Vec::with_capacity(raw.len());
        let mut index = Vec::with_capacity(raw.len());
        for (i, value) in raw.into_iter().enumerate() {
            let field = format!("points[{i}]");
            match serde_json::from_value::<P::Point>(value) {
                Ok(point) => {
                    let (machine, metric) = point.target();
                    check_target(machine, metric, &field, errors);
                    point.check(&field, errors);
                    points.push(point);
                    index.push(i);
                }
                Err(e) => errors.push(FieldError::new(field, e.to_string())),
            }
        }
        let mut seen = HashSet::new();
        for (point, i) in points.iter().zip(index) {
            let (machine, metric) = point.target();
            if !seen.insert((machine, metric)) {
                errors.push(FieldError::new(
                    format!("points[{i}]"),
                    format!("machine `{machine}` metric `{metric}` is mapped twice"),
                ));
            }
        }
        Box::new(Configured {
            protocol: self,
            settings,
            points,
        })
    }
}

/// Checks the machine and metric a point feeds.
fn check_target(machine: &str, metric: &str, field: &str, errors: &mut Vec<FieldError>) {
    const RULE: &str = "must be 1 to 128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit";
    if !valid_name(machine) {
        errors.push(FieldError::new(format!("{field}.machine"), RULE));
    }
    if !valid_name(metric) {
        errors.push(FieldError::new(format!("{field}.metric"), RULE));
    }
}

/// The settings and points of one source of protocol `P`.
#[derive(Debug)]
struct Configured<P: Protocol> {
    protocol: &'static P,
    settings: P::Settings,
    points: Vec<P::Point>,
}

impl<P: Protocol> DeviceConfig for Configured<P> {
    fn targets(&self) -> Vec<(&str, &str)> {
        self.points.iter().map(Point::target).collect()
    }

    fn to_fields(&self) -> Result<Vec<(&'static str, Value)>, serde_json::Error> {
        let mut fields = Vec::with_capacity(2);
        if let Some(field) = P::SETTINGS_FIELD {
            fields.push((field, serde_json::to_value(&self.settings)?));
        }
        fields.push(("points", serde_json::to_value(&self.points)?));
        Ok(fields)
    }

    fn redact(&self, doc: &mut Value) {
        if let Some(section) = P::SETTINGS_FIELD.and_then(|f| doc.get_mut(f)) {
            self.protocol.redact_settings(section);
        }
    }

    fn open(&self, connection: Connection) -> Box<dyn Device> {
        self.protocol.open(connection, &self.settings, &self.points)
    }

    fn clone_box(&self) -> Box<dyn DeviceConfig> {
        Box::new(Configured {
            protocol: self.protocol,
            settings: self.settings.clone(),
            points: self.points.clone(),
        })
    }
}
