//! Request bodies that handlers read as JSON and check field by field (so that every problem comes back
//! in one 422), described here for the OpenAPI document: the types exist for their schemas only, and each
//! schema states the rules the handler's check applies (names, ranges, enums), so that a client generated
//! from the document sends what the server accepts. Names (machines, metrics, sources) follow
//! `haltless_connectors::gateway::validate::valid_name`: 1 to 128 letters, digits, `_ . : -`, starting with
//! a letter or digit.

#![allow(dead_code)] // the fields are read by utoipa's derive, not by code

use serde::Deserialize;
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// An instant as the API takes it (`crate::routes::paging::instant`): epoch milliseconds, or RFC 3339 with
/// seconds (years 1000 to 9999).
#[derive(ToSchema)]
#[schema(
    pattern = "^([0-9]{1,14}|[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]))$"
)]
pub struct Instant(String);

/// `POST /api/v1/ingest`'s body (`Content-Encoding: gzip` allowed). Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestBody {
    /// The readings: at least one, at most `gateway.max_readings_per_request` (10,000 by default; more
    /// answer 413). Invalid entries answer 422 naming each entry's index and field.
    #[schema(min_items = 1, max_items = 10000)]
    pub readings: Vec<IngestReading>,
}

/// One reading. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestReading {
    /// A machine of the caller's tenant, by name (an unknown or retired machine answers 422).
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub machine: String,
    /// The metric's name.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub metric: String,
    /// When it was measured: RFC 3339, or whole epoch milliseconds; from 1970 on, and at most
    /// `gateway.max_future_skew_secs` (300 s by default) ahead of the gateway's clock.
    pub ts: ReadingTime,
    /// A finite number.
    #[schema(format = Double)]
    pub value: f64,
    /// OPC-UA style quality; absent or null is unknown.
    #[schema(nullable)]
    pub quality: Option<Quality>,
}

/// A reading's time: RFC 3339, or whole milliseconds since 1970-01-01T00:00:00Z (not negative).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ReadingTime {
    /// RFC 3339.
    Rfc3339(String),
    /// Epoch milliseconds.
    EpochMillis(i64),
}

impl utoipa::PartialSchema for ReadingTime {
    fn schema() -> RefOr<Schema> {
        let rfc3339 = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339, e.g. `2026-11-29T08:00:00Z`"));
        let millis = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .description(Some("Milliseconds since 1970-01-01T00:00:00Z"));
        OneOfBuilder::new().item(rfc3339).item(millis).into()
    }
}

impl ToSchema for ReadingTime {}

/// A reading's quality.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Trustworthy.
    Good,
    /// Usable with care.
    Uncertain,
    /// Not to be used.
    Bad,
}

/// A source definition (`POST /api/v1/sources`, `PUT /api/v1/sources/{id}`): its name, whether it is
/// polled, and the protocol's definition. Every problem answers 422 naming its field, e.g.
/// `points[3].data_type`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "protocol", mapping(
    ("modbus_tcp" = "#/components/schemas/ModbusSource"),
    ("opcua" = "#/components/schemas/OpcUaSource"),
)))]
pub enum SourceDefinition {
    /// A Modbus TCP device.
    ModbusTcp(ModbusSource),
    /// An OPC-UA server.
    OpcUa(OpcUaSource),
}

/// A Modbus TCP source. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModbusSource {
    /// Unique within the tenant.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub name: String,
    /// Polled (default true).
    #[serde(default)]
    #[schema(default = true)]
    pub enabled: bool,
    /// The protocol.
    pub protocol: ModbusProtocol,
    /// `host:port` (`[address]:port` for IPv6), e.g. `10.0.0.5:502`; the platform's outbound policy
    /// decides which addresses it may reach.
    #[schema(
        pattern = "^([A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]{2,45}\\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
        max_length = 300
    )]
    pub endpoint: String,
    /// Time between two polls, ms.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 3600000, default = 1000)]
    pub poll_interval_ms: u64,
    /// How long one connect or read may take, ms.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 60000, default = 3000)]
    pub timeout_ms: u64,
    /// The registers read and the (machine, metric) each feeds: 1 to 10,000.
    #[schema(value_type = Vec<ModbusPoint>, min_items = 1, max_items = 10000)]
    pub points: Vec<ModbusPointFields>,
}

/// One Modbus value, in one of four shapes: a bit (`coil`, `discrete_input`: `bool`), or a value of
/// one, two or four registers (`holding`, `input`: `u16`/`i16`, `u32`/`i32`/`f32`, `f64`) that must end
/// by address 65535; byte order means nothing for a bit, word order nothing for one register (both
/// only `big` there). Unknown fields are refused.
pub struct ModbusPoint;

impl utoipa::PartialSchema for ModbusPoint {
    fn schema() -> RefOr<Schema> {
        // (description, tables, data types, last address, word orders, byte orders)
        type Shape = (
            &'static str,
            &'static [&'static str],
            &'static [&'static str],
            u16,
            &'static [&'static str],
            &'static [&'static str],
        );
        let shapes: [Shape; 4] = [
            (
                "A bit.",
                &["coil", "discrete_input"],
                &["bool"],
                65535,
                &["big"],
                &["big"],
            ),
            (
                "One register.",
                &["holding", "input"],
                &["u16", "i16"],
                65535,
                &["big"],
                &["big", "little"],
            ),
            (
                "Two registers.",
                &["holding", "input"],
                &["u32", "i32", "f32"],
                65534,
                &["big", "little"],
                &["big", "little"],
            ),
            (
                "Four registers.",
                &["holding", "input"],
                &["f64"],
                65532,
                &["big", "little"],
                &["big", "little"],
            ),
        ];
        let text = |values: &[&str]| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.to_vec()))
        };
        let mut one_of = OneOfBuilder::new().description(Some(
            "One Modbus value: a bit, or a value of one, two or four registers ending by address 65535.",
        ));
        for (description, tables, types, last, words, bytes) in shapes {
            let RefOr::T(Schema::Object(mut shape)) = ModbusPointFields::schema() else {
                continue;
            };
            shape.description = Some(description.to_owned());
            let address = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .minimum(Some(0))
                .maximum(Some(last))
                .description(Some("Zero-based address of the first register or bit."));
            for (field, schema) in [
                ("register", text(tables).into()),
                ("data_type", text(types).into()),
                ("word_order", text(words).default(Some("big".into())).into()),
                ("byte_order", text(bytes).default(Some("big".into())).into()),
                ("address", address.into()),
            ] {
                shape.properties.insert(field.to_owned(), schema);
            }
            one_of = one_of.item(Schema::Object(shape));
        }
        one_of.into()
    }
}

impl ToSchema for ModbusPoint {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("Scale".into(), <Scale as utoipa::PartialSchema>::schema()));
    }
}

/// A point's scale: a finite number other than 0.
pub struct Scale;

impl utoipa::PartialSchema for Scale {
    fn schema() -> RefOr<Schema> {
        let side = |above: bool| {
            let number = ObjectBuilder::new()
                .schema_type(Type::Number)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)));
            if above {
                number.exclusive_minimum(Some(0))
            } else {
                number.exclusive_maximum(Some(0))
            }
        };
        OneOfBuilder::new()
            .description(Some("A finite number other than 0."))
            .item(side(true))
            .item(side(false))
            .default(Some(1.0.into()))
            .into()
    }
}

impl ToSchema for Scale {}

/// The fields of a Modbus point; [`ModbusPoint`] narrows them by shape. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModbusPointFields {
    /// A machine of the tenant.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub machine: String,
    /// The metric's name.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub metric: String,
    /// Unit (slave) id.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 255, default = 1)]
    pub unit_id: u8,
    /// Data table.
    pub register: ModbusRegister,
    /// Zero-based address of the first register or bit; the value must end by 65535.
    #[schema(minimum = 0, maximum = 65535)]
    pub address: u16,
    /// Encoding of the value.
    pub data_type: ModbusDataType,
    /// Byte order within a register (default big; only big for `bool`).
    #[serde(default)]
    pub byte_order: ModbusOrder,
    /// Register order of a multi-register value (default big; only big for one-register types).
    #[serde(default)]
    pub word_order: ModbusOrder,
    /// The reading is `raw * scale + offset`: finite, not 0 (default 1).
    #[serde(default)]
    #[schema(value_type = Scale)]
    pub scale: f64,
    /// Finite.
    #[serde(default)]
    #[schema(format = Double, default = 0.0)]
    pub offset: f64,
}

/// `modbus_tcp`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModbusProtocol {
    /// Modbus TCP.
    ModbusTcp,
}

/// `opcua`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpcUaProtocol {
    /// OPC-UA binary over TCP.
    Opcua,
}

/// A Modbus data table.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModbusRegister {
    /// Read/write bits.
    Coil,
    /// Read-only bits.
    DiscreteInput,
    /// Read/write 16-bit registers.
    Holding,
    /// Read-only 16-bit registers.
    Input,
}

/// How a point's registers encode its value.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModbusDataType {
    /// One bit.
    Bool,
    /// One register, unsigned.
    U16,
    /// One register, signed.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, signed.
    I32,
    /// Two registers, IEEE 754 single.
    F32,
    /// Four registers, IEEE 754 double.
    F64,
}

/// Byte or word order.
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModbusOrder {
    /// Most significant first.
    #[default]
    Big,
    /// Least significant first.
    Little,
}

/// An OPC-UA source. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpcUaSource {
    /// Unique within the tenant.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub name: String,
    /// Polled (default true).
    #[serde(default)]
    #[schema(default = true)]
    pub enabled: bool,
    /// The protocol.
    pub protocol: OpcUaProtocol,
    /// `opc.tcp://host:port[/path]`.
    #[schema(pattern = "^opc\\.tcp://[^/\\s][^\\s]*$", max_length = 2000)]
    pub endpoint: String,
    /// Time between two polls (or the publishing interval with `subscribe`), ms.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 3600000, default = 1000)]
    pub poll_interval_ms: u64,
    /// How long one connect or read may take, ms.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 60000, default = 3000)]
    pub timeout_ms: u64,
    /// Session settings (defaults: no security, anonymous, periodic reads).
    pub opcua: Option<OpcUaSettings>,
    /// The variables read and the (machine, metric) each feeds: 1 to 10,000.
    #[schema(min_items = 1, max_items = 10000)]
    pub points: Vec<OpcUaPoint>,
}

/// OPC-UA session settings. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpcUaSettings {
    /// Security policy.
    #[serde(default)]
    #[schema(default = "None")]
    pub security_policy: SecurityPolicy,
    /// Message security mode; `None` exactly when the policy is `None`.
    #[serde(default)]
    #[schema(default = "None")]
    pub security_mode: SecurityMode,
    /// User identity (default anonymous).
    #[serde(default)]
    pub auth: OpcUaAuth,
    /// Receive changes through a subscription instead of periodic reads.
    #[serde(default)]
    #[schema(default = false)]
    pub subscribe: bool,
}

/// How the client authenticates; the password is never shown back.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "type")]
pub enum OpcUaAuth {
    /// No user identity.
    #[default]
    Anonymous,
    /// User name and password.
    UserPassword {
        /// The user name.
        #[schema(min_length = 1)]
        username: String,
        /// The password.
        #[schema(min_length = 1)]
        password: String,
    },
}

/// An OPC-UA security policy.
#[derive(Default, Deserialize, ToSchema)]
pub enum SecurityPolicy {
    /// No security.
    #[default]
    None,
    /// Basic256Sha256.
    Basic256Sha256,
    /// Aes128_Sha256_RsaOaep.
    #[serde(rename = "Aes128_Sha256_RsaOaep")]
    Aes128Sha256RsaOaep,
    /// Aes256_Sha256_RsaPss.
    #[serde(rename = "Aes256_Sha256_RsaPss")]
    Aes256Sha256RsaPss,
}

/// An OPC-UA message security mode.
#[derive(Default, Deserialize, ToSchema)]
pub enum SecurityMode {
    /// Neither signed nor encrypted.
    #[default]
    None,
    /// Signed.
    Sign,
    /// Signed and encrypted.
    SignAndEncrypt,
}

/// One OPC-UA variable. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpcUaPoint {
    /// A machine of the tenant.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub machine: String,
    /// The metric's name.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub metric: String,
    /// Node id: `ns=2;s=Line1.Temp`, `ns=3;i=1001`, `i=2258`, `ns=1;g=<uuid>` or `ns=1;b=<base64>`; the
    /// namespace 0 to 65535, a number 0 to 4294967295. Not the null node id (`i=0` or the nil GUID in
    /// namespace 0: the pattern refuses the first, the server both).
    #[schema(
        pattern = "^(ns=0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]);i=0*([0-9]{1,9}|[1-3][0-9]{9}|4[01][0-9]{8}|42[0-8][0-9]{7}|429[0-3][0-9]{6}|4294[0-8][0-9]{5}|42949[0-5][0-9]{4}|429496[0-6][0-9]{3}|4294967[01][0-9]{2}|42949672[0-8][0-9]|429496729[0-5])|(ns=0+;)?i=0*([1-9][0-9]{0,8}|[1-3][0-9]{9}|4[01][0-9]{8}|42[0-8][0-9]{7}|429[0-3][0-9]{6}|4294[0-8][0-9]{5}|42949[0-5][0-9]{4}|429496[0-6][0-9]{3}|4294967[01][0-9]{2}|42949672[0-8][0-9]|429496729[0-5])|(ns=0*([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]);)?(s=.+|b=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}))$",
        max_length = 4096
    )]
    pub node_id: String,
    /// The reading is `value * scale + offset`: finite, not 0 (default 1).
    #[serde(default)]
    #[schema(value_type = Scale)]
    pub scale: f64,
    /// Finite.
    #[serde(default)]
    #[schema(format = Double, default = 0.0)]
    pub offset: f64,
}

/// A machine tag: 1 to 64 letters, digits, `_ . : - = /`.
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_.:=/-]{1,64}$")]
pub struct Tag(String);

/// An API key's scope.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Post readings.
    Ingest,
    /// Read machines, readings, rules and alerts.
    Read,
}

/// A user's role.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    /// Everything, users and keys included.
    Admin,
    /// Machines, rules, alerts, work orders.
    Operator,
    /// Reads only.
    Viewer,
}

/// A calendar date, `YYYY-MM-DD`.
#[derive(ToSchema)]
#[schema(pattern = "^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$")]
pub struct Date(String);

/// A name of a machine (or metric) of the tenant.
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
pub struct MachineName(String);

/// An alert's severity.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Needs attention.
    Warning,
    /// Act now.
    Critical,
}

/// An alert's state.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Its rule holds.
    Open,
    /// It cleared.
    Resolved,
}

/// A work order's status.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderStatus {
    /// Planned.
    Open,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
    /// Dropped.
    Cancelled,
}

/// A kind of maintenance event.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceKind {
    /// Looked at.
    Inspection,
    /// Fixed.
    Repair,
    /// A part replaced.
    Replacement,
    /// Calibrated.
    Calibration,
    /// Lubricated.
    Lubrication,
    /// Cleaned.
    Cleaning,
    /// Anything else.
    Other,
}

/// A machine's status in the fleet.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FleetStatus {
    /// Readings arrive, no open alert.
    Running,
    /// Open alerts.
    Alerting,
    /// No reading for the tenant's `silent_after_minutes`.
    Silent,
}

/// A CSV document (the schema of the CSV answers).
#[derive(ToSchema)]
#[schema(value_type = String)]
pub struct Csv(String);

/// A PDF document (the schema of the PDF answers).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Pdf(String);
