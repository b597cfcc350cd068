//! Channels' secret fields at rest: one sealed JSON object per channel (envelope encryption, see
//! [`haltless_schemas::secrets`]), bound to the channel's id, so a sealed value copied to another
//! channel's row does not open there.

use haltless_schemas::secrets::{Keyring, Sealed};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Seals and opens channels' secret fields with the operator's keys.
#[derive(Debug, Clone)]
pub struct ChannelSecrets {
    keyring: Option<Keyring>,
}

fn context(channel: Uuid) -> Vec<u8> {
    [b"notification_channel:".as_slice(), channel.as_bytes()].concat()
}

impl ChannelSecrets {
    /// With `keyring`; without one, channels cannot store secrets.
    pub fn new(keyring: Option<Keyring>) -> Self {
        Self { keyring }
    }

    fn keyring(&self) -> Result<&Keyring, String> {
        self.keyring.as_ref().ok_or_else(|| {
            "no secrets key is configured (secrets.key_file or secrets.keys)".to_owned()
        })
    }

    /// `fields` sealed for `channel`.
    pub fn seal(&self, channel: Uuid, fields: &Map<String, Value>) -> Result<String, String> {
        let plain = Value::Object(fields.clone()).to_string();
        Ok(self
            .keyring()?
            .seal(&plain, &context(channel))
            .map_err(|e| e.to_string())?
            .to_string())
    }

    /// The fields sealed for `channel`.
    pub fn open(&self, channel: Uuid, sealed: &str) -> Result<Map<String, Value>, String> {
        let sealed: Sealed = sealed
            .parse()
            .map_err(|e: haltless_schemas::secrets::SecretsError| e.to_string())?;
        let plain = self
            .keyring()?
            .open(&sealed, &context(channel))
            .map_err(|e| e.to_string())?;
        match serde_json::from_str(&plain) {
            Ok(Value::Object(fields)) => Ok(fields),
            _ => Err("a sealed channel secret is not an object".into()),
        }
    }

    /// `sealed` re-wrapped under the current key, or `None` when it already is (`haltless secrets rotate`).
    pub fn rewrap(&self, sealed: &str) -> Result<Option<String>, String> {
        let sealed: Sealed = sealed
            .parse()
            .map_err(|e: haltless_schemas::secrets::SecretsError| e.to_string())?;
        Ok(self
            .keyring()?
            .rewrap(&sealed)
            .map_err(|e| e.to_string())?
            .map(|s| s.to_string()))
    }
}

/// Re-wraps every channel secret sealed under an older key with the current one (at start, `haltless
/// migrate` and `haltless secrets rotate`); returns how many changed. One that does not open is left as it
/// is and reported.
pub async fn rewrap_stored(
    pool: &sqlx::PgPool,
    secrets: &ChannelSecrets,
) -> Result<usize, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, secret FROM notification_channels")
        .fetch_all(pool)
        .await?;
    let mut changed = 0;
    for (id, sealed) in rows {
        match secrets.rewrap(&sealed) {
            Ok(None) => {}
            Ok(Some(rewrapped)) => {
                changed += sqlx::query(
                    "UPDATE notification_channels SET secret = $2 WHERE id = $1 AND secret = $3",
                )
                .bind(id)
                .bind(rewrapped)
                .bind(&sealed)
                .execute(pool)
                .await?
                .rows_affected() as usize;
            }
            Err(e) => {
                tracing::warn!(channel = %id, error = %e, "a channel's secret does not open with the configured keys")
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_for_its_channel_only() {
        let keyring = Keyring::parse(&[Keyring::generate_entry("k1").unwrap()]).unwrap();
        let secrets = ChannelSecrets::new(Some(keyring));
        let mut fields = Map::new();
        fields.insert(
            "webhook_url".into(),
            Value::String("https://hooks.example.com/T/B/token".into()),
        );
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = secrets.seal(a, &fields).unwrap();
        assert!(!sealed.contains("token"));
        assert_eq!(secrets.open(a, &sealed).unwrap(), fields);
        assert!(secrets.open(b, &sealed).is_err(), "bound to its channel");
        assert!(ChannelSecrets::new(None)
            .seal(a, &fields)
            .unwrap_err()
            .contains("no secrets key"));
    }
}
