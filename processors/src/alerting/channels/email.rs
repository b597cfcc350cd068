//! `email`: SMTP through lettre, HTML and plain text, STARTTLS required unless configured otherwise.
//!
//! The connection goes to an address the outbound policy allowed, while the certificate is checked
//! against the configured host name. The notification's id is the `Message-ID`, the same on every
//! retry, so a receiving system can drop a repeat.

use futures::future::BoxFuture;
use futures::FutureExt;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

use super::http::resolve;
use super::{only_fields, text, Channel, Config, Outbound, Recipient, SendError};
use crate::alerting::message::Message;

/// The email channel.
#[derive(Debug)]
pub struct Email;

const FIELDS: [&str; 8] = [
    "host",
    "port",
    "tls",
    "username",
    "password",
    "from",
    "to",
    "subject_prefix",
];

/// The recipients: `to` as one address or a list of 1 to 20.
fn recipients(config: &Config) -> Result<Vec<Mailbox>, String> {
    let list: Vec<&str> = match config.get("to") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or("to lists addresses as strings"))
            .collect::<Result<_, _>>()?,
        _ => return Err("to is required: an address or a list of them".into()),
    };
    if !(1..=20).contains(&list.len()) {
        return Err("to: 1 to 20 addresses".into());
    }
    list.iter()
        .map(|a| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("to: {a:?} is not an address: {e}"))
        })
        .collect()
}

fn port(config: &Config) -> Result<u16, String> {
    match config.get("port") {
        None => Ok(587),
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| "port must be 1 to 65535".into()),
    }
}

fn tls_mode(config: &Config) -> Result<&str, String> {
    match config.get("tls").map(|v| v.as_str()) {
        None => Ok("starttls"),
        Some(Some(mode @ ("starttls" | "tls" | "none"))) => Ok(mode),
        Some(_) => Err("tls is starttls (the default), tls or none".into()),
    }
}

fn optional<'a>(config: &'a Config, field: &str) -> Result<Option<&'a str>, String> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{field} must be a string")),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML body: the title and a table of the alerts.
fn html(message: &Message) -> String {
    let mut rows = String::new();
    for a in &message.alerts {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            html_escape(&a.severity),
            html_escape(&a.machine),
            html_escape(&a.rule_name),
            html_escape(&a.metric),
            a.observed,
            a.expected,
            html_escape(&a.raised_at),
        ));
    }
    format!(
        "<!doctype html><html><body><h2>{}</h2><table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\
         <tr><th>Severity</th><th>Machine</th><th>Rule</th><th>Metric</th><th>Observed</th><th>Expected</th>\
         <th>Raised</th></tr>{rows}</table><p style=\"color:#666\">Haltless · {} · notification {}</p></body></html>",
        html_escape(&message.title()),
        html_escape(&message.group),
        message.id
    )
}

impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["password"]
    }

    fn check(&self, config: &Config) -> Result<(), String> {
        only_fields(config, &FIELDS)?;
        haltless_schemas::outbound::check_host(text(config, "host")?)
            .map_err(|e| format!("host: {e}"))?;
        port(config)?;
        tls_mode(config)?;
        text(config, "from")?
            .parse::<Mailbox>()
            .map_err(|e| format!("from is not an address: {e}"))?;
        recipients(config)?;
        let user = optional(config, "username")?;
        let password = optional(config, "password")?;
        if user.is_some() != password.is_some() {
            return Err("username and password go together".into());
        }
        if optional(config, "subject_prefix")?.is_some_and(|p| p.chars().count() > 50) {
            return Err("subject_prefix: at most 50 characters".into());
        }
        Ok(())
    }

    fn send<'a>(
        &'a self,
        out: &'a Outbound,
        config: &'a Config,
        message: &'a Message,
        _to: Option<&'a Recipient>,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            let bad = SendError::permanent;
            let host = text(config, "host").map_err(bad)?;
            let port = port(config).map_err(bad)?;
            let tls = match tls_mode(config).map_err(bad)? {
                "none" => Tls::None,
                mode => {
                    let params = TlsParameters::new(host.to_owned())
                        .map_err(|e| SendError::permanent(format!("TLS: {e}")))?;
                    if mode == "tls" {
                        Tls::Wrapper(params)
                    } else {
                        Tls::Required(params)
                    }
                }
            };
            let addr = resolve(out, host, port).await?[0];
            let mut transport =
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
                    .port(port)
                    .tls(tls)
                    .timeout(Some(out.timeout));
            if let (Some(user), Some(password)) = (
                optional(config, "username").map_err(bad)?,
                optional(config, "password").map_err(bad)?,
            ) {
                transport =
                    transport.credentials(Credentials::new(user.to_owned(), password.to_owned()));
            }
            let prefix = optional(config, "subject_prefix")
                .map_err(bad)?
                .unwrap_or("");
            let mut mail = lettre::Message::builder()
                .from(
                    text(config, "from")
                        .map_err(bad)?
                        .parse::<Mailbox>()
                        .map_err(|e| bad(e.to_string()))?,
                )
                .subject(format!("{prefix}{}", message.title()))
                .message_id(Some(format!("<{}@haltless>", message.id)));
            for to in recipients(config).map_err(bad)? {
                mail = mail.to(to);
            }
            let mail = mail
                .multipart(MultiPart::alternative_plain_html(
                    message.text(),
                    html(message),
                ))
                .map_err(|e| SendError::permanent(format!("could not build the mail: {e}")))?;
            transport.build().send(mail).await.map(drop).map_err(|e| {
                let retriable = !e.is_permanent();
                let status = e.status().map(|c| u16::from(c.severity as u8) * 100);
                SendError {
                    message: if e.is_timeout() {
                        "the mail server did not answer in time".into()
                    } else if let Some(code) = e.status() {
                        format!("the mail server answered {code}")
                    } else {
                        "could not talk to the mail server".into()
                    },
                    retriable,
                    status,
                }
            })
        }
        .boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> Config {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn configurations_are_checked_field_by_field() {
        let ok = config(
            serde_json::json!({"host": "smtp.example.com", "from": "Haltless <alerts@example.com>", "to": ["ops@example.com"]}),
        );
        assert!(Email.check(&ok).is_ok());
        let bad_to = config(
            serde_json::json!({"host": "smtp.example.com", "from": "a@example.com", "to": "nobody"}),
        );
        assert!(Email.check(&bad_to).unwrap_err().starts_with("to:"));
        let half_login = config(
            serde_json::json!({"host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com", "username": "u"}),
        );
        assert!(Email
            .check(&half_login)
            .unwrap_err()
            .contains("username and password"));
        let bad_tls = config(
            serde_json::json!({"host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com", "tls": "maybe"}),
        );
        assert!(Email.check(&bad_tls).unwrap_err().contains("tls"));
    }

    #[test]
    fn html_escapes_what_tenants_wrote() {
        let mut m = Message::test(uuid::Uuid::nil(), uuid::Uuid::nil());
        m.group = "<script>".into();
        assert!(html(&m).contains("&lt;script&gt;"));
    }
}
