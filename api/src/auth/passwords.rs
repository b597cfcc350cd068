//! Passwords: argon2id hashes, checked off the async runtime because hashing is deliberately slow.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use haltless_schemas::metric_names;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (bounds the hashing work a request can ask for).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Why a password was refused or could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error(
        "the password must have between {MIN_PASSWORD_CHARS} and {MAX_PASSWORD_CHARS} characters"
    )]
    Policy,
    /// The hasher failed (should not happen).
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// Checks the password policy.
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(PasswordError::Policy)
    }
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `stored`. An unusable hash (an invited user's `!invited`) is false after
/// the same work as a real check, against a dummy hash, so that the answer's timing does not tell such an
/// account from others.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => {
            if let Ok(dummy) = PasswordHash::new(dummy_hash()) {
                let _ = Argon2::default().verify_password(password.as_bytes(), &dummy);
            }
            false
        }
    }
}

/// Hashes at once: one per core. Each argon2id run takes about 19 MiB and a core for a while, so a burst of
/// logins or sign-ups queues here instead of exhausting memory and starving every other request.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// [`hash_password`] on the blocking pool, within the process's hashing slots.
pub async fn hash_password_async(password: String) -> Result<String, PasswordError> {
    let _slot = hashing_slots()
        .acquire()
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    metrics::counter!(metric_names::AUTH_PASSWORD_WORK, "kind" => "hash").increment(1);
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// [`verify_password`] on the blocking pool, within the hashing slots. With no stored hash (unknown account) a dummy hash is
/// checked so that the answer takes as long as for a real account.
pub async fn verify_password_async(password: String, stored: Option<String>) -> bool {
    let Ok(_slot) = hashing_slots().acquire().await else {
        return false;
    };
    metrics::counter!(metric_names::AUTH_PASSWORD_WORK, "kind" => "verify").increment(1);
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => verify_password(&password, &stored),
        None => {
            let _ = verify_password(&password, dummy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_policy_holds() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("anything", "!invited"));
        assert!(!verify_password("not-a-real-password", "!invited"));
        assert!(check_policy("short").is_err());
        assert!(check_policy("long enough!").is_ok());
    }
}
