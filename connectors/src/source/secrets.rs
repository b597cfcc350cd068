//! A definition's secrets at rest: the strings at its protocol's [`super::Protocol::SECRETS`] are sealed
//! ([`haltless_schemas::secrets`]) before the definition is stored, and opened just before it is polled.
//! Each seal is bound to the owning tenant, so a sealed value moved to another tenant's row does not open.

use haltless_schemas::secrets::{Keyring, Sealed, SecretsError};
use serde_json::Value;

use super::registry::ErasedProtocol;

/// Why a definition's secrets could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The platform has no key for secrets at rest.
    #[error("this platform has no key for secrets at rest (secrets.key_file or secrets.keys)")]
    NoKey,
    /// Sealing or opening failed.
    #[error(transparent)]
    Sealing(#[from] SecretsError),
}

/// Seals every secret of `doc`, whatever it holds (a tenant may not hand in a value that looks sealed and
/// have it opened: a sealed-looking text is sealed like any other). Returns how many were sealed.
pub fn seal(
    doc: &mut Value,
    protocol: &dyn ErasedProtocol,
    keyring: Option<&Keyring>,
    context: &[u8],
) -> Result<usize, SecretError> {
    let mut n = 0;
    for pointer in protocol.secret_pointers() {
        if let Some(Value::String(s)) = doc.pointer_mut(&pointer) {
            let keyring = keyring.ok_or(SecretError::NoKey)?;
            *s = keyring.seal(s, context)?.to_string();
            n += 1;
        }
    }
    Ok(n)
}

/// Brings the secrets of a stored definition up to date: plain text (stored before secrets were sealed)
/// is sealed, and values sealed under an older key are re-wrapped under the current one. Returns how
/// many changed.
pub fn reseal(
    doc: &mut Value,
    protocol: &dyn ErasedProtocol,
    keyring: &Keyring,
    context: &[u8],
) -> Result<usize, SecretError> {
    let mut n = 0;
    for pointer in protocol.secret_pointers() {
        if let Some(Value::String(s)) = doc.pointer_mut(&pointer) {
            let new = if Sealed::looks_sealed(s) {
                keyring.rewrap(&s.parse()?)?
            } else {
                Some(keyring.seal(s, context)?)
            };
            if let Some(new) = new {
                *s = new.to_string();
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Opens the sealed secrets of a stored definition in place, for polling. A definition stored before
/// secrets were sealed (plain text) is left as it is: the next start-up seals it.
pub fn open(
    doc: &mut Value,
    protocol: &dyn ErasedProtocol,
    keyring: Option<&Keyring>,
    context: &[u8],
) -> Result<(), SecretError> {
    for pointer in protocol.secret_pointers() {
        if let Some(Value::String(s)) = doc.pointer_mut(&pointer) {
            if Sealed::looks_sealed(s) {
                let keyring = keyring.ok_or(SecretError::NoKey)?;
                *s = keyring.open(&s.parse()?, context)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocols::PROTOCOLS;

    fn doc(password: &str) -> Value {
        json!({"protocol": "opcua", "endpoint": "opc.tcp://plc:4840",
               "opcua": {"auth": {"type": "user_password", "username": "u", "password": password}},
               "points": [{"machine": "m", "metric": "t", "node_id": "i=1"}]})
    }

    fn ring(id: &str) -> Keyring {
        Keyring::parse(&[Keyring::generate_entry(id).unwrap()]).unwrap()
    }

    #[test]
    fn seals_for_storage_and_opens_for_polling() {
        let opcua = PROTOCOLS.get("opcua").unwrap();
        let keys = ring("k1");
        let mut stored = doc("s3cret");
        assert_eq!(seal(&mut stored, opcua, Some(&keys), b"t1").unwrap(), 1);
        assert!(!stored.to_string().contains("s3cret"), "{stored}");
        let mut polled = stored.clone();
        open(&mut polled, opcua, Some(&keys), b"t1").unwrap();
        assert_eq!(polled, doc("s3cret"));
        assert!(crate::source::SourceSpec::from_json(polled).is_ok());
        let mut elsewhere = stored.clone();
        assert!(
            open(&mut elsewhere, opcua, Some(&keys), b"t2").is_err(),
            "another tenant's"
        );
        assert!(matches!(
            open(&mut stored.clone(), opcua, None, b"t1"),
            Err(SecretError::NoKey)
        ));
        assert!(matches!(
            seal(&mut doc("x"), opcua, None, b"t1"),
            Err(SecretError::NoKey)
        ));
        let mut anonymous = json!({"protocol": "opcua", "endpoint": "opc.tcp://plc", "points": []});
        assert_eq!(
            seal(&mut anonymous, opcua, None, b"t1").unwrap(),
            0,
            "nothing to seal, no key needed"
        );
    }

    #[test]
    fn a_tenant_cannot_hand_in_a_sealed_value_to_have_it_opened() {
        let opcua = PROTOCOLS.get("opcua").unwrap();
        let keys = ring("k1");
        let mut theirs = doc("their-password");
        seal(&mut theirs, opcua, Some(&keys), b"t1").unwrap();
        let copied = theirs
            .pointer("/opcua/auth/password")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let mut mine = doc(&copied);
        seal(&mut mine, opcua, Some(&keys), b"t1").unwrap();
        open(&mut mine, opcua, Some(&keys), b"t1").unwrap();
        assert_eq!(
            mine.pointer("/opcua/auth/password").unwrap(),
            &Value::String(copied)
        );
    }

    #[test]
    fn reseal_seals_plain_text_and_rewraps_older_keys() {
        let opcua = PROTOCOLS.get("opcua").unwrap();
        let k1 = Keyring::generate_entry("k1").unwrap();
        let k2 = Keyring::generate_entry("k2").unwrap();
        let old = Keyring::parse(&[&k1]).unwrap();
        let mut stored = doc("pw");
        assert_eq!(
            reseal(&mut stored, opcua, &old, b"t").unwrap(),
            1,
            "plain text sealed"
        );
        assert_eq!(
            reseal(&mut stored, opcua, &old, b"t").unwrap(),
            0,
            "already current"
        );
        let rotated = Keyring::parse(&[&k2, &k1]).unwrap();
        assert_eq!(
            reseal(&mut stored, opcua, &rotated, b"t").unwrap(),
            1,
            "rewrapped"
        );
        let only_new = Keyring::parse(&[&k2]).unwrap();
        open(&mut stored, opcua, Some(&only_new), b"t").unwrap();
        assert_eq!(stored, doc("pw"));
    }
}
