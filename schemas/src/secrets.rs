//! Secrets at rest: envelope encryption with AES-256-GCM.
//!
//! Every secret (an OPC-UA password now, a webhook URL with its token or an SMTP password next) gets a
//! fresh random 256-bit data key; the secret is encrypted under that data key, and the data key is
//! encrypted ("wrapped") under the operator's key-encryption key (KEK), whose id is stored beside it. Both
//! encryptions are AES-256-GCM with random 96-bit nonces. The sealed form is one line of text
//! ([`Sealed`]: `sealed:v1:<key id>:<wrapped data key>:<ciphertext>`, hexadecimal) that fits in a JSON
//! string or a text column.
//!
//! Why a data key per secret rather than the KEK directly: rotating the KEK re-wraps 60 bytes per secret and
//! never touches the ciphertexts; the KEK only ever encrypts random keys (never tenant-chosen data, and
//! few messages, far from GCM's nonce limits); and the KEK could move to a KMS that wraps and unwraps data
//! keys without the rest changing. The cost, 60 bytes per secret, does not matter here.
//!
//! A seal is bound to a context (associated data, e.g. the tenant's id): a sealed value copied to another
//! tenant's row does not open there.
//!
//! No I/O: the caller reads the key file and stores the sealed text.

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

/// The prefix of every sealed value.
pub const PREFIX: &str = "sealed:v1:";

const NONCE: usize = 12;
const TAG: usize = 16;
const KEY: usize = 32;

/// Why sealing or opening failed. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// The key configuration is unusable (the reason says which entry and why).
    #[error("secrets keys: {0}")]
    Keys(String),
    /// The text is not a sealed value.
    #[error("not a sealed value")]
    Malformed,
    /// The value was sealed under a key this keyring does not hold.
    #[error("sealed under key `{0}`, which is not configured")]
    UnknownKey(String),
    /// The key is wrong, the value was altered, or it belongs to another context.
    #[error("the sealed value does not open (altered, another key, or another owner's)")]
    Open,
}

/// A secret in sealed form: which KEK wrapped its data key, the wrapped data key and the ciphertext, each
/// with its nonce. Its text form is what is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    key_id: String,
    wrapped_key: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Sealed {
    /// The id of the key-encryption key that wrapped the data key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `text` has the sealed form's prefix (it may still be malformed).
    pub fn looks_sealed(text: &str) -> bool {
        text.starts_with(PREFIX)
    }
}

/// Only the key id: the rest is of no use in a log.
impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}:{}",
            self.key_id,
            hex::encode(&self.wrapped_key),
            hex::encode(&self.ciphertext)
        )
    }
}

impl FromStr for Sealed {
    type Err = SecretsError;

    fn from_str(s: &str) -> Result<Self, SecretsError> {
        let rest = s.strip_prefix(PREFIX).ok_or(SecretsError::Malformed)?;
        let mut parts = rest.split(':');
        let (Some(key_id), Some(wrapped), Some(ciphertext), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretsError::Malformed);
        };
        let wrapped_key = hex::decode(wrapped).map_err(|_| SecretsError::Malformed)?;
        let ciphertext = hex::decode(ciphertext).map_err(|_| SecretsError::Malformed)?;
        if !valid_key_id(key_id)
            || wrapped_key.len() != NONCE + KEY + TAG
            || ciphertext.len() < NONCE + TAG
        {
            return Err(SecretsError::Malformed);
        }
        Ok(Self {
            key_id: key_id.to_owned(),
            wrapped_key,
            ciphertext,
        })
    }
}

impl serde::Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The operator's key-encryption keys: the current one seals, every one opens.
#[derive(Clone)]
pub struct Keyring {
    /// (id, key); the first is the current one.
    keys: Vec<(String, Key<Aes256Gcm>)>,
}

/// Only the key ids.
impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// Reads keys written `id:hex` (64 hexadecimal digits: 32 bytes), one per entry; the first is the
    /// current one. Blank entries and lines starting with `#` are skipped, so a key file's lines can be
    /// given as they are.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, SecretsError> {
        let mut keys: Vec<(String, Key<Aes256Gcm>)> = Vec::new();
        for (n, entry) in entries.iter().enumerate() {
            let entry = entry.as_ref().trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let bad = |why: &str| SecretsError::Keys(format!("entry {}: {why}", n + 1));
            let (id, hex_key) = entry.split_once(':').ok_or_else(|| bad("not `id:key`"))?;
            if !valid_key_id(id) {
                return Err(bad("the id must be 1 to 32 letters, digits, '-' or '_'"));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(bad("the id is used twice"));
            }
            let bytes =
                hex::decode(hex_key.trim()).map_err(|_| bad("the key is not hexadecimal"))?;
            if bytes.len() != KEY {
                return Err(bad("the key must be 32 bytes (64 hexadecimal digits)"));
            }
            keys.push((id.to_owned(), *Key::<Aes256Gcm>::from_slice(&bytes)));
        }
        if keys.is_empty() {
            return Err(SecretsError::Keys("no key given".into()));
        }
        Ok(Self { keys })
    }

    /// A new random key in the `id:hex` form [`Keyring::parse`] reads.
    pub fn generate_entry(id: &str) -> Result<String, SecretsError> {
        if !valid_key_id(id) {
            return Err(SecretsError::Keys(
                "the id must be 1 to 32 letters, digits, '-' or '_'".into(),
            ));
        }
        let key = Aes256Gcm::generate_key(&mut OsRng);
        Ok(format!("{id}:{}", hex::encode(key)))
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    fn key(&self, id: &str) -> Result<&Key<Aes256Gcm>, SecretsError> {
        self.keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, key)| key)
            .ok_or_else(|| SecretsError::UnknownKey(id.to_owned()))
    }

    /// Seals `plaintext` under a new data key wrapped by the current key, bound to `context`.
    pub fn seal(&self, plaintext: &str, context: &[u8]) -> Result<Sealed, SecretsError> {
        let data_key = Aes256Gcm::generate_key(&mut OsRng);
        let ciphertext = encrypt(&data_key, plaintext.as_bytes(), context)?;
        let (key_id, kek) = &self.keys[0];
        let wrapped_key = encrypt(kek, &data_key, key_id.as_bytes())?;
        Ok(Sealed {
            key_id: key_id.clone(),
            wrapped_key,
            ciphertext,
        })
    }

    /// The plaintext of `sealed`, which must have been sealed with the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<String, SecretsError> {
        let data_key = self.unwrap_key(sealed)?;
        let plain = decrypt(&data_key, &sealed.ciphertext, context)?;
        String::from_utf8(plain).map_err(|_| SecretsError::Open)
    }

    /// `sealed` with its data key wrapped by the current key (the ciphertext unchanged), or `None` when
    /// it already is.
    pub fn rewrap(&self, sealed: &Sealed) -> Result<Option<Sealed>, SecretsError> {
        if sealed.key_id == self.current_id() {
            return Ok(None);
        }
        let data_key = self.unwrap_key(sealed)?;
        let (key_id, kek) = &self.keys[0];
        Ok(Some(Sealed {
            key_id: key_id.clone(),
            wrapped_key: encrypt(kek, &data_key, key_id.as_bytes())?,
            ciphertext: sealed.ciphertext.clone(),
        }))
    }

    fn unwrap_key(&self, sealed: &Sealed) -> Result<Key<Aes256Gcm>, SecretsError> {
        let kek = self.key(&sealed.key_id)?;
        let bytes = decrypt(kek, &sealed.wrapped_key, sealed.key_id.as_bytes())?;
        if bytes.len() != KEY {
            return Err(SecretsError::Open);
        }
        Ok(*Key::<Aes256Gcm>::from_slice(&bytes))
    }
}

/// nonce ‖ AES-256-GCM(key, nonce, plaintext, aad).
fn encrypt(key: &Key<Aes256Gcm>, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SecretsError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = Aes256Gcm::new(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Only for plaintexts of gigabytes.
        .map_err(|_| SecretsError::Malformed)?;
    let mut out = nonce.to_vec();
    out.extend(ciphertext);
    Ok(out)
}

fn decrypt(key: &Key<Aes256Gcm>, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SecretsError> {
    if sealed.len() < NONCE + TAG {
        return Err(SecretsError::Malformed);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE);
    Aes256Gcm::new(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| SecretsError::Open)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const K1: &str = "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn ring(entries: &[&str]) -> Keyring {
        Keyring::parse(entries).unwrap()
    }

    #[test]
    fn seals_and_opens_without_the_plaintext_in_the_text() {
        let keys = ring(&[K1]);
        let sealed = keys.seal("s3cret-password", b"tenant-a").unwrap();
        let text = sealed.to_string();
        assert!(text.starts_with("sealed:v1:k1:"), "{text}");
        assert!(!text.contains("s3cret"));
        assert!(!text.contains(&hex::encode("s3cret")));
        let back: Sealed = text.parse().unwrap();
        assert_eq!(keys.open(&back, b"tenant-a").unwrap(), "s3cret-password");
        assert_ne!(
            keys.seal("s3cret-password", b"tenant-a")
                .unwrap()
                .to_string(),
            text,
            "every seal has its own data key and nonces"
        );
        let json = serde_json::to_value(&sealed).unwrap();
        assert_eq!(json, serde_json::Value::String(text));
        assert_eq!(serde_json::from_value::<Sealed>(json).unwrap(), sealed);
    }

    #[test]
    fn another_context_another_key_or_an_altered_value_does_not_open() {
        let keys = ring(&[K1]);
        let sealed = keys.seal("pw", b"tenant-a").unwrap();
        assert_eq!(keys.open(&sealed, b"tenant-b"), Err(SecretsError::Open));
        let other = ring(&[&Keyring::generate_entry("k1").unwrap()]);
        assert_eq!(other.open(&sealed, b"tenant-a"), Err(SecretsError::Open));
        let unknown = ring(&[&Keyring::generate_entry("k9").unwrap()]);
        assert_eq!(
            unknown.open(&sealed, b"tenant-a"),
            Err(SecretsError::UnknownKey("k1".into()))
        );
        let mut text = sealed.to_string();
        let last = text.pop().unwrap();
        text.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            keys.open(&text.parse().unwrap(), b"tenant-a"),
            Err(SecretsError::Open)
        );
    }

    #[test]
    fn rotation_rewraps_the_data_key_and_keeps_the_ciphertext() {
        let old = ring(&[K1]);
        let sealed = old.seal("pw", b"t").unwrap();
        let new_entry = Keyring::generate_entry("k2").unwrap();
        let both = ring(&[&new_entry, K1]);
        assert_eq!(both.current_id(), "k2");
        let rewrapped = both.rewrap(&sealed).unwrap().unwrap();
        assert_eq!(rewrapped.key_id(), "k2");
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        assert_eq!(both.rewrap(&rewrapped).unwrap(), None, "already current");
        // Once the old key is gone, the rewrapped value still opens.
        let only_new = ring(&[&new_entry]);
        assert_eq!(only_new.open(&rewrapped, b"t").unwrap(), "pw");
        assert!(only_new.open(&sealed, b"t").is_err());
    }

    #[test]
    fn key_entries_are_checked_and_never_printed() {
        let keys = ring(&["# the current key first", "", K1]);
        assert_eq!(keys.current_id(), "k1");
        assert!(!format!("{keys:?}").contains("0001020304"));
        for bad in [
            vec!["k1"],
            vec!["k 1:00"],
            vec!["k1:zz"],
            vec!["k1:0001"],
            vec![K1, K1],
            vec![],
        ] {
            assert!(Keyring::parse(&bad).is_err(), "{bad:?}");
        }
        let error = Keyring::parse(&["k1:0001"]).unwrap_err().to_string();
        assert!(!error.contains("0001"), "{error}");
        let sealed = keys.seal("pw", b"").unwrap();
        assert!(!format!("{sealed:?}").contains(&hex::encode(&sealed.ciphertext)));
    }

    #[test]
    fn malformed_text_is_refused() {
        for text in [
            "pw",
            "sealed:v1:k1:00:00",
            "sealed:v1:k1",
            "sealed:v2:k1:00:00",
        ] {
            assert_eq!(
                text.parse::<Sealed>(),
                Err(SecretsError::Malformed),
                "{text}"
            );
        }
    }
}
