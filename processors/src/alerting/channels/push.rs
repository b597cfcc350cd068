//! Web Push (RFC 8030) to the browsers people subscribed with this channel: each notification is
//! encrypted for its subscription (RFC 8291, `aes128gcm`) and signed with the channel's VAPID key
//! (RFC 8292), through the `web-push-native` crate (its encryption; the VAPID token is signed here, for
//! the crate leaves a non-default port out of the token's audience).
//!
//! The channel holds a VAPID key pair: made by the platform when the configuration leaves it out, the
//! private half sealed like every secret, the public half shown (`vapid_public_key`) for browsers to
//! subscribe with (`applicationServerKey`). The `Topic` header is the notification's id, so a push
//! service that still holds an undelivered copy replaces it instead of delivering it twice.

use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike as _, ECDSAP256PublicKeyLike as _, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::{p256, Auth, WebPushBuilder};

use super::http::post;
use super::{only_fields, text, Channel, Config, Outbound, Recipient, SendError};
use crate::alerting::message::Message;

/// The registered name.
pub const NAME: &str = "push";

/// How long a push service keeps a notification for a browser that is offline.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// The most plaintext a push message carries (services accept 4096 bytes once encrypted).
const MAX_PAYLOAD: usize = 3000;

/// Web Push to subscribed browsers.
#[derive(Debug)]
pub struct Push;

fn key_pair(config: &Config) -> Result<ES256KeyPair, String> {
    let private = text(config, "vapid_private_key")?;
    Base64UrlUnpadded::decode_vec(private)
        .ok()
        // A P-256 scalar is 32 bytes; `from_bytes` panics on any other length.
        .filter(|raw| raw.len() == 32)
        .and_then(|raw| ES256KeyPair::from_bytes(&raw).ok())
        .ok_or_else(|| "vapid_private_key is not a base64url P-256 private key".to_owned())
}

/// The public half of a key pair, as browsers take it (base64url of the uncompressed point).
fn public_key(pair: &ES256KeyPair) -> String {
    Base64UrlUnpadded::encode_string(&pair.public_key().public_key().to_bytes_uncompressed())
}

/// The VAPID authorization (RFC 8292): a JWT for the push service's origin (with its port, when not the
/// scheme's default), signed with the channel's key, and that key.
fn vapid(pair: &ES256KeyPair, endpoint: &str, subject: &str) -> Result<http::HeaderValue, String> {
    let origin = reqwest::Url::parse(endpoint)
        .map_err(|_| "the subscription's endpoint does not parse".to_owned())?
        .origin()
        .ascii_serialization();
    let claims = Claims::create(TTL.into())
        .with_audience(origin)
        .with_subject(subject);
    let token = pair
        .sign(claims)
        .map_err(|e| format!("could not sign: {e}"))?;
    http::HeaderValue::from_str(&format!("vapid t={token}, k={}", public_key(pair)))
        .map_err(|_| "the authorization is not a header value".to_owned())
}

/// Checks a browser's subscription keys as `PushSubscription.toJSON()` gives them: `p256dh` a P-256
/// point, `auth` 16 bytes, both base64url.
pub fn check_keys(p256dh: &str, auth: &str) -> Result<(), String> {
    Base64UrlUnpadded::decode_vec(p256dh.trim_end_matches('='))
        .ok()
        .and_then(|k| p256::PublicKey::from_sec1_bytes(&k).ok())
        .ok_or("keys.p256dh is not a base64url P-256 public key")?;
    Base64UrlUnpadded::decode_vec(auth.trim_end_matches('='))
        .ok()
        .filter(|a| a.len() == 16)
        .ok_or("keys.auth is not 16 bytes of base64url")?;
    Ok(())
}

/// Alerts listed in one push message at most; the rest are counted.
const MAX_LISTED: usize = 10;

/// What the browser shows: a title, the first alerts in a line each, their ids for the portal, and how
/// many there are.
pub fn payload(message: &Message) -> Vec<u8> {
    let lines = message.lines();
    let mut shown = lines.len().min(MAX_LISTED);
    loop {
        let mut body = lines[..shown].join("\n");
        if shown < lines.len() {
            body.push_str(&format!("\n… and {} more", lines.len() - shown));
        }
        let bytes = json!({
            "id": message.id,
            "kind": message.kind,
            "title": message.title(),
            "body": body,
            "severity": message.worst(),
            "alert_count": message.alerts.len(),
            "alert_ids": message.alerts.iter().take(shown).map(|a| a.id).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes();
        if bytes.len() <= MAX_PAYLOAD || shown == 0 {
            return bytes;
        }
        shown -= 1;
    }
}

impl Channel for Push {
    fn name(&self) -> &'static str {
        NAME
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["vapid_private_key"]
    }

    fn complete(&self, config: &mut Config) -> Result<(), String> {
        let pair = match config.get("vapid_private_key") {
            None => {
                let pair = ES256KeyPair::generate();
                let private = Base64UrlUnpadded::encode_string(&pair.to_bytes());
                config.insert("vapid_private_key".into(), Value::String(private));
                pair
            }
            Some(_) => key_pair(config)?,
        };
        config.insert("vapid_public_key".into(), Value::String(public_key(&pair)));
        Ok(())
    }

    fn check(&self, config: &Config) -> Result<(), String> {
        only_fields(
            config,
            &["subject", "vapid_public_key", "vapid_private_key"],
        )?;
        let subject = text(config, "subject")?;
        if !(subject.starts_with("mailto:") || subject.starts_with("https://"))
            || subject.len() > 200
        {
            return Err(
                "subject must be a mailto: or https:// contact for the push services".into(),
            );
        }
        let pair = key_pair(config)?;
        if text(config, "vapid_public_key")? != public_key(&pair) {
            return Err("vapid_public_key is not the public half of vapid_private_key".into());
        }
        Ok(())
    }

    fn send<'a>(
        &'a self,
        out: &'a Outbound,
        config: &'a Config,
        message: &'a Message,
        to: Option<&'a Recipient>,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            let to = to.ok_or_else(|| {
                SendError::permanent("a push notification goes to a subscribed browser; none given")
            })?;
            let pair = key_pair(config).map_err(SendError::permanent)?;
            let subject = text(config, "subject").map_err(SendError::permanent)?;
            let gone = || SendError::permanent("the browser's subscription keys are not valid");
            let ua_public = Base64UrlUnpadded::decode_vec(to.p256dh.trim_end_matches('='))
                .ok()
                .and_then(|k| p256::PublicKey::from_sec1_bytes(&k).ok())
                .ok_or_else(gone)?;
            let auth = Base64UrlUnpadded::decode_vec(to.auth.trim_end_matches('='))
                .ok()
                .filter(|a| a.len() == 16)
                .ok_or_else(gone)?;
            let endpoint: http::Uri = to
                .endpoint
                .parse()
                .map_err(|_| SendError::permanent("the subscription's endpoint does not parse"))?;
            let request = WebPushBuilder::new(endpoint, ua_public, Auth::clone_from_slice(&auth))
                .with_valid_duration(TTL)
                .build(payload(message))
                .map_err(|e| SendError::permanent(format!("could not encrypt: {e}")))?;
            let (parts, body) = request.into_parts();
            let mut headers = parts.headers;
            let vapid = vapid(&pair, &to.endpoint, subject).map_err(SendError::permanent)?;
            headers.insert(http::header::AUTHORIZATION, vapid);
            let urgency = if message.worst() == "critical" {
                "high"
            } else {
                "normal"
            };
            headers.insert("urgency", http::HeaderValue::from_static(urgency));
            if let Ok(topic) = http::HeaderValue::from_str(&message.id.simple().to_string()) {
                headers.insert("topic", topic);
            }
            post(out, &to.endpoint, headers, body).await
        }
        .boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_new_channel_gets_a_key_pair_whose_public_half_is_shown() {
        let mut config = Config::new();
        config.insert("subject".into(), json!("mailto:ops@example.com"));
        Push.complete(&mut config).unwrap();
        Push.check(&config).unwrap();
        let public = Base64UrlUnpadded::decode_vec(text(&config, "vapid_public_key").unwrap());
        assert_eq!(public.unwrap().len(), 65, "an uncompressed P-256 point");
        // Completing again keeps the pair.
        let before = config.clone();
        Push.complete(&mut config).unwrap();
        assert_eq!(config, before);
        config.insert("vapid_public_key".into(), json!("AAAA"));
        assert!(Push.check(&config).unwrap_err().contains("public half"));
        config.insert("subject".into(), json!("ops"));
        assert!(Push.check(&config).unwrap_err().contains("subject"));
    }

    /// A private key of another length than 32 bytes is refused (it once panicked the handler).
    #[test]
    fn private_keys_of_the_wrong_length_are_refused() {
        for key in ["AAA", "", &"A".repeat(44), &"A".repeat(86)] {
            let mut config = Config::new();
            config.insert("subject".into(), json!("mailto:ops@example.com"));
            config.insert("vapid_private_key".into(), json!(key));
            let refused = Push.complete(&mut config).unwrap_err();
            assert!(refused.contains("vapid_private_key"), "{key}: {refused}");
        }
    }

    #[test]
    fn long_messages_are_cut_to_fit_a_push_message() {
        let mut m = Message::test(Uuid::nil(), Uuid::nil());
        let alert: crate::alerting::message::AlertSummary = serde_json::from_value(json!({
            "id": Uuid::nil(), "machine": "press-07", "rule_id": "r", "rule_name": "spindle too hot",
            "severity": "critical", "detector": "threshold", "metric": "spindle_temp",
            "observed": 91.0, "expected": 70.0, "raised_at": "2026-11-29T10:00:00Z", "state": "open"
        }))
        .unwrap();
        m.alerts = vec![alert; 200];
        let bytes = payload(&m);
        assert!(bytes.len() <= MAX_PAYLOAD, "{}", bytes.len());
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(body["body"].as_str().unwrap().contains("and 190 more"));
        assert_eq!(body["alert_ids"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(body["alert_count"], 200);
    }
}
