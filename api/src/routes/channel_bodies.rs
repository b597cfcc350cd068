//! The bodies of `POST` and `PUT /api/v1/channels`, described for the OpenAPI document: the handlers read
//! a channel's configuration as a JSON object and the channel's kind checks it field by field
//! (`haltless_processors::alerting::channels`), so these types exist for their schemas only. Each kind's
//! configuration schema states what that kind's check accepts; a new body is a `oneOf` of one schema per
//! kind, told apart by `kind`. The unit tests hold the kinds here to the registry.

#![allow(dead_code)] // the fields are read by utoipa's derive, not by code

use std::borrow::Cow;

use serde::Deserialize;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, Discriminator, KnownFormat,
    ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// What a secret field of a configuration shows, and what an update may send to keep it.
pub const HIDDEN: &str = "(hidden)";

/// A kind's name, its configuration's schema name and the schema.
type Kind = (&'static str, &'static str, fn() -> RefOr<Schema>);

/// Every kind.
const KINDS: [Kind; 5] = [
    ("webhook", "WebhookConfig", WebhookConfig::schema),
    ("slack", "SlackConfig", ChatConfig::schema),
    ("teams", "TeamsConfig", ChatConfig::schema),
    ("email", "EmailConfig", EmailConfig::schema),
    ("push", "PushConfig", PushConfig::schema),
];

/// An `http://` or `https://` URL with a plain host: a DNS name whose last label begins with a letter, or
/// an IPv4 address, an optional port, path and query. (The server also takes `[IPv6]` hosts; where a
/// channel may connect is the operator's outbound policy's, checked when it sends.)
pub struct HttpUrl;

impl PartialSchema for HttpUrl {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An `http://` or `https://` URL with a plain host (a DNS name or an IPv4 address; `[IPv6]` too, which the pattern leaves out)."))
            .pattern(Some("^https?://(([A-Za-z0-9_-]{1,40}\\.){0,4}[A-Za-z][A-Za-z0-9_-]{0,39}|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?(\\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$"))
            .max_length(Some(2000))
            .into()
    }
}

impl ToSchema for HttpUrl {}

/// An e-mail address, `user@example.com` (the server also takes `Name <user@example.com>`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Email)]
pub struct Mailbox(String);

/// A `webhook` channel: each notification is POSTed as JSON to `url`, signed with HMAC-SHA256 over
/// `timestamp.body` (`X-Haltless-Signature: v1=<hex>`, `X-Haltless-Timestamp`). Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The receiver (secret: it often carries a token).
    #[schema(value_type = HttpUrl)]
    pub url: String,
    /// The signing key (secret): 16 to 200 bytes of UTF-8, not only blanks.
    #[schema(min_length = 16, max_length = 200, pattern = "\\S")]
    pub signing_secret: String,
}

/// A `slack` or `teams` channel: each notification is POSTed to the chat's incoming webhook. Unknown
/// fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// The incoming webhook's URL (secret: it is the credential).
    #[schema(value_type = HttpUrl)]
    pub webhook_url: String,
}

/// How an `email` channel's connection to its SMTP server is secured.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain, then STARTTLS (required).
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No encryption.
    None,
}

/// The receivers of an `email` channel: one address or a list of 1 to 20.
pub struct Recipients;

impl PartialSchema for Recipients {
    fn schema() -> RefOr<Schema> {
        let many = ArrayBuilder::new()
            .items(reference("Mailbox"))
            .min_items(Some(1))
            .max_items(Some(20));
        OneOfBuilder::new()
            .description(Some("One address, or a list of 1 to 20."))
            .item(reference("Mailbox"))
            .item(many)
            .into()
    }
}

impl ToSchema for Recipients {}

/// An `email` channel: each notification is a mail (text and HTML) through the SMTP server. `username` and
/// `password` go together: both strings, or neither (absent or null). Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name or address: 1 to 253 letters, digits, `. - _ : [ ] %`.
    #[schema(pattern = "^[A-Za-z0-9._:\\[\\]%-]{1,253}$")]
    pub host: String,
    /// Its port (default 587; not null).
    #[schema(minimum = 1, maximum = 65535, default = 587, nullable = false)]
    pub port: Option<u16>,
    /// Default `starttls` (not null).
    #[schema(nullable = false)]
    pub tls: Option<SmtpTls>,
    /// The SMTP user, with `password`.
    pub username: Option<String>,
    /// The SMTP password (secret), with `username`.
    pub password: Option<String>,
    /// The sender.
    #[schema(value_type = Mailbox)]
    pub from: String,
    /// The receivers.
    #[schema(value_type = Recipients)]
    pub to: String,
    /// Put before every subject: at most 50 characters.
    #[schema(max_length = 50)]
    pub subject_prefix: Option<String>,
}

/// A `push` channel: Web Push (RFC 8030, VAPID) to the browsers people subscribed with it. Unknown fields
/// are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// The contact the push services may reach the sender at: a `mailto:` or `https://` URI, at most 200
    /// bytes.
    #[schema(pattern = "^(mailto:|https://)", max_length = 200)]
    pub subject: String,
    /// The VAPID private key (secret): a P-256 scalar, 32 bytes of base64url without padding. Left out,
    /// the platform makes one.
    #[schema(pattern = "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$", nullable = false)]
    pub vapid_private_key: Option<String>,
    /// Ignored: the platform derives it from the private key and shows it.
    pub vapid_public_key: Option<String>,
}

/// A channel's name: 1 to 100 characters, not only blanks (surrounding blanks are trimmed).
fn channel_name() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "1 to 100 characters, not only blanks (surrounding blanks are trimmed); unique in the tenant.",
        ))
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some("\\S"))
        .into()
}

/// Deliveries in flight at once to a channel.
fn concurrency() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .description(Some("Deliveries in flight at once to the channel."))
        .minimum(Some(1))
        .maximum(Some(32))
        .into()
}

/// The schema component of `kind`'s new body.
fn new_body_name(kind: &str) -> String {
    let mut chars = kind.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase());
    format!(
        "New{}{}Channel",
        first.into_iter().collect::<String>(),
        chars.as_str()
    )
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// `max_concurrency`, which may be null.
fn optional_concurrency(description: &str) -> AnyOfBuilder {
    AnyOfBuilder::new()
        .item(reference("Concurrency"))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(description))
}

/// A new channel of one kind: `{name, kind, config, max_concurrency?}`, closed.
fn new_body(kind: &str, config: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some(format!("A new `{kind}` channel.")))
        .property("name", reference("ChannelName"))
        .required("name")
        .property(
            "kind",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([kind])),
        )
        .required("kind")
        .property("config", reference(config))
        .required("config")
        .property("max_concurrency", optional_concurrency("Default 4."))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

/// `kind`'s configuration as an update takes it: its secret fields may be left out or sent as
/// `"(hidden)"`, and keep their stored values then.
fn update_config(kind: &str, config: RefOr<Schema>) -> RefOr<Schema> {
    let secrets = haltless_processors::alerting::channels::kind(kind)
        .map(|k| k.secret_fields())
        .unwrap_or_default();
    let RefOr::T(Schema::Object(mut object)) = config else {
        return config;
    };
    object.required.retain(|f| !secrets.contains(&f.as_str()));
    for field in secrets {
        if let Some(schema) = object.properties.remove(*field) {
            let hidden = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([HIDDEN]));
            object.properties.insert(
                (*field).to_owned(),
                AnyOfBuilder::new().item(schema).item(hidden).into(),
            );
        }
    }
    object.description = Some(format!(
        "A `{kind}` channel's configuration in an update: secret fields left out or sent as `\"(hidden)\"` keep their values."
    ));
    RefOr::T(Schema::Object(object))
}

/// `kind`'s configuration with its rules across fields: an email channel's `username` and `password` are
/// both strings or neither (an update, which may leave the password out to keep it, has no such rule).
fn with_rules(kind: &str, config: RefOr<Schema>) -> RefOr<Schema> {
    if kind != "email" {
        return config;
    }
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let null = || ObjectBuilder::new().schema_type(Type::Null);
    let both = ObjectBuilder::new()
        .property("username", string())
        .property("password", string())
        .required("username")
        .required("password");
    let neither = ObjectBuilder::new()
        .property("username", null())
        .property("password", null());
    AllOfBuilder::new()
        .item(config)
        .item(
            OneOfBuilder::new()
                .description(Some("`username` and `password`: both, or neither."))
                .item(both)
                .item(neither),
        )
        .into()
}

/// Body of `POST /api/v1/channels`: one schema per kind, told apart by `kind`. Every problem answers 422
/// naming the field; a name in use answers 409.
pub struct NewChannelBody;

impl PartialSchema for NewChannelBody {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "A new notification channel: its name, its kind and the kind's configuration.",
        ));
        let mut mapping = Vec::new();
        for (kind, _, _) in KINDS {
            let name = new_body_name(kind);
            one_of = one_of.item(reference(&name));
            mapping.push((kind, format!("#/components/schemas/{name}")));
        }
        one_of
            .discriminator(Some(Discriminator::with_mapping("kind", mapping)))
            .into()
    }
}

impl ToSchema for NewChannelBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("NewChannel")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        shared_schemas(schemas);
        for (kind, config, schema) in KINDS {
            schemas.push((config.to_owned(), with_rules(kind, schema())));
            schemas.push((new_body_name(kind), new_body(kind, config)));
        }
    }
}

/// Body of `PUT /api/v1/channels/{id}`: the name, the configuration of the channel's kind (which does
/// not change), and optionally the concurrency. Unknown fields are refused.
pub struct ChannelUpdateBody;

impl PartialSchema for ChannelUpdateBody {
    fn schema() -> RefOr<Schema> {
        let mut configs = AnyOfBuilder::new().description(Some(
            "The configuration of the channel's kind; secret fields left out (or sent as `\"(hidden)\"`) keep their values.",
        ));
        for (_, config, _) in KINDS {
            configs = configs.item(reference(&format!("{config}Update")));
        }
        ObjectBuilder::new()
            .description(Some(
                "A channel's new name and configuration (its kind stays).",
            ))
            .property("name", reference("ChannelName"))
            .required("name")
            .property("config", configs)
            .required("config")
            .property(
                "max_concurrency",
                optional_concurrency("Absent or null: unchanged."),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for ChannelUpdateBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ChannelUpdate")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        shared_schemas(schemas);
        for (kind, config, schema) in KINDS {
            schemas.push((format!("{config}Update"), update_config(kind, schema())));
        }
    }
}

/// The schemas both bodies refer to.
fn shared_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push(("ChannelName".into(), channel_name()));
    schemas.push(("Concurrency".into(), concurrency()));
    schemas.push(("HttpUrl".into(), HttpUrl::schema()));
    schemas.push(("Mailbox".into(), Mailbox::schema()));
    schemas.push(("SmtpTls".into(), SmtpTls::schema()));
    schemas.push(("Recipients".into(), Recipients::schema()));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use haltless_processors::alerting::channels;
    use serde_json::{json, Value};

    use super::*;

    fn object(schema: RefOr<Schema>) -> utoipa::openapi::schema::Object {
        match schema {
            RefOr::T(Schema::Object(o)) => o,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn every_registered_kind_has_a_schema_and_no_other() {
        let mut registered = channels::kind_names();
        registered.sort_unstable();
        let mut described: Vec<&str> = KINDS.iter().map(|(k, _, _)| *k).collect();
        described.sort_unstable();
        assert_eq!(described, registered);
    }

    /// A configuration of only the fields a kind's schema requires passes the kind's check, and every
    /// secret field is in the schema.
    #[test]
    fn the_required_fields_are_what_each_kind_needs() {
        let samples = json!({
            "webhook": {"url": "https://hooks.example.com/h?t=1", "signing_secret": "0123456789abcdef"},
            "slack": {"webhook_url": "https://hooks.slack.com/services/T/B/X"},
            "teams": {"webhook_url": "https://example.webhook.office.com/w"},
            "email": {"host": "smtp.example.com", "from": "alerts@example.com", "to": "ops@example.com"},
            "push": {"subject": "mailto:ops@example.com"},
        });
        for (kind, _, schema) in KINDS {
            let channel = channels::kind(kind).unwrap();
            let schema = object(schema());
            let mut config = samples[kind].as_object().unwrap().clone();
            let mut required = schema.required.clone();
            required.sort();
            let mut given: Vec<String> = config.keys().cloned().collect();
            given.sort();
            assert_eq!(required, given, "{kind}");
            channel.complete(&mut config).unwrap();
            channel.check(&config).unwrap();
            for field in channel.secret_fields() {
                assert!(schema.properties.contains_key(*field), "{kind}: {field}");
            }
            let closed = matches!(
                schema.additional_properties.as_deref(),
                Some(AdditionalProperties::FreeForm(false))
            );
            assert!(closed, "{kind} refuses unknown fields");
        }
    }

    #[test]
    fn updates_may_leave_secrets_out_or_hidden() {
        let update = object(update_config("webhook", WebhookConfig::schema()));
        assert!(update.required.is_empty(), "{:?}", update.required);
        let url = serde_json::to_value(&update.properties["url"]).unwrap();
        assert_eq!(url["anyOf"][1]["enum"], json!([HIDDEN]));
        let email = object(update_config("email", EmailConfig::schema()));
        assert!(email.required.contains(&"host".to_owned()));
        let names: Value = serde_json::to_value(NewChannelBody::schema()).unwrap();
        assert_eq!(names["discriminator"]["propertyName"], "kind");
        assert_eq!(names["oneOf"].as_array().unwrap().len(), KINDS.len());
    }
}
