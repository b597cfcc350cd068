//! Trust on first use of a device server's certificate: the first certificate a source's server presents is
//! pinned (its SHA-256 fingerprint, stored with the source), and a later different one is refused until an
//! administrator accepts it (`POST /api/v1/sources/{id}/trust`). The protocol checks what its server
//! presents ([`CertificateTrust::check`]); the poller stores what was pinned and presented.

use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::error::SourceError;

/// The SHA-256 fingerprint of a DER certificate, as 64 lowercase hex digits.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a source knows of its server's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustState {
    /// The fingerprint trusted: the first one seen, or the one an administrator accepted.
    pub pinned: Option<String>,
    /// The fingerprint of the certificate the server presented last.
    pub presented: Option<String>,
}

/// A source's certificate trust, shared by its device (which checks) and its poller (which stores).
#[derive(Debug, Clone, Default)]
pub struct CertificateTrust(Arc<Mutex<TrustState>>);

impl CertificateTrust {
    /// Trust with `pinned` as the stored pin (`None`: the next certificate seen is pinned).
    pub fn new(pinned: Option<String>) -> Self {
        Self(Arc::new(Mutex::new(TrustState {
            pinned,
            presented: None,
        })))
    }

    /// What is pinned and what was presented.
    pub fn state(&self) -> TrustState {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Checks the certificate a server presents (DER; empty when it has none): with nothing pinned, it is
    /// pinned; the pinned one passes; any other is refused. The refusal is a category with what to do,
    /// the fingerprints are in the source's status.
    pub fn check(&self, der: &[u8]) -> Result<(), SourceError> {
        let presented = (!der.is_empty()).then(|| fingerprint(der));
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.presented = presented.clone();
        match (&state.pinned, presented) {
            // Nothing to pin: the server has no certificate (security policy None on a bare server).
            (None, None) => Ok(()),
            (None, Some(first)) => {
                state.pinned = Some(first);
                Ok(())
            }
            (Some(pinned), Some(now)) if *pinned == now => Ok(()),
            (Some(_), None) => Err(SourceError::Untrusted(
                "the server presents no certificate, but one is pinned for this source".into(),
            )),
            (_, Some(_)) => Err(SourceError::Untrusted(
                "the server presents a certificate other than the one pinned for this source (see \
                 status.certificate); an administrator may accept it with POST /api/v1/sources/{id}/trust"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pins_the_first_certificate_and_refuses_another() {
        let trust = CertificateTrust::new(None);
        trust.check(b"first").unwrap();
        let first = fingerprint(b"first");
        assert_eq!(first.len(), 64);
        assert_eq!(trust.state().pinned.as_deref(), Some(first.as_str()));
        trust.check(b"first").unwrap();
        let e = trust.check(b"second").unwrap_err().to_string();
        assert!(e.starts_with("untrusted certificate: "), "{e}");
        assert!(!e.contains(&fingerprint(b"second")), "a category: {e}");
        let state = trust.state();
        assert_eq!(state.pinned, Some(first), "the pin stays");
        assert_eq!(state.presented, Some(fingerprint(b"second")));
        assert!(
            trust.check(b"").is_err(),
            "no certificate where one is pinned"
        );
        // Nothing to pin when the server has no certificate.
        let none = CertificateTrust::new(None);
        none.check(b"").unwrap();
        assert_eq!(none.state(), TrustState::default());
        // An accepted pin.
        let accepted = CertificateTrust::new(Some(fingerprint(b"second")));
        accepted.check(b"second").unwrap();
        assert!(accepted.check(b"first").is_err());
    }
}
