//! `webhook`: the notification document as JSON (schema in the README), signed.
//!
//! Headers: `Idempotency-Key` (the notification's id, the same on every retry),
//! `X-Haltless-Timestamp` (Unix seconds of this attempt) and `X-Haltless-Signature: v1=<hex>`, the
//! HMAC-SHA256 under `signing_secret` of `<timestamp>.<body>`. A receiver recomputes it and refuses
//! timestamps older than a few minutes (replays).

use futures::future::BoxFuture;
use futures::FutureExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{
    check_url, only_fields, post_json, text, Channel, Config, Outbound, Recipient, SendError,
};
use crate::alerting::message::Message;

/// The webhook channel.
#[derive(Debug)]
pub struct Webhook;

/// `v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["url", "signing_secret"]
    }

    fn check(&self, config: &Config) -> Result<(), String> {
        only_fields(config, &["url", "signing_secret"])?;
        check_url(config, "url")?;
        let secret = text(config, "signing_secret")?;
        if !(16..=200).contains(&secret.len()) {
            return Err("signing_secret must be 16 to 200 characters".into());
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
            let url = text(config, "url").map_err(SendError::permanent)?;
            let secret = text(config, "signing_secret").map_err(SendError::permanent)?;
            let body = serde_json::to_vec(message)
                .map_err(|e| SendError::permanent(format!("unencodable message: {e}")))?;
            let now = chrono::Utc::now().timestamp();
            let headers = [
                ("idempotency-key", message.id.to_string()),
                ("x-haltless-timestamp", now.to_string()),
                ("x-haltless-signature", signature(secret, now, &body)),
            ];
            post_json(out, url, body, &headers).await
        }
        .boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // RFC 4231 test case 2 ("Jefe"), with the message split as `<timestamp>.<body>`.
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        assert_eq!(
            sig,
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(sig, signature("Jefe", 1, b"what do ya want for nothing?"));
    }

    #[test]
    fn configurations_need_a_url_and_a_long_secret() {
        let config = |v: serde_json::Value| v.as_object().unwrap().clone();
        let ok = config(
            serde_json::json!({"url": "https://example.com/h", "signing_secret": "0123456789abcdef"}),
        );
        assert!(Webhook.check(&ok).is_ok());
        let short =
            config(serde_json::json!({"url": "https://example.com/h", "signing_secret": "short"}));
        assert!(Webhook
            .check(&short)
            .unwrap_err()
            .contains("signing_secret"));
        let extra = config(
            serde_json::json!({"url": "https://example.com/h", "signing_secret": "0123456789abcdef", "x": 1}),
        );
        assert!(Webhook
            .check(&extra)
            .unwrap_err()
            .contains("unknown field x"));
    }
}
