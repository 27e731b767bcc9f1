//! Password hashing with argon2id. It is slow on purpose: call it only from blocking code (a
//! `Services::blocking` task), never on an async worker.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};

use crate::{
    config::PasswordHashConfig,
    error::{Error, Result},
};

/// Hashes and verifies passwords with the configured argon2id cost.
#[derive(Clone)]
pub struct PasswordHasherService {
    params: Params,
}

/// Passwords longer than this are refused (argon2 accepts them, but they only cost us time).
pub const MAX_PASSWORD_BYTES: usize = 512;

impl PasswordHasherService {
    pub fn new(config: &PasswordHashConfig) -> Result<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| Error::internal(format!("argon2 parameters: {e}")))?;
        Ok(Self { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Returns the PHC string (`$argon2id$v=19$m=…`) for `password`. Blocking.
    pub fn hash(&self, password: &str) -> Result<String> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::weak_password(format!(
                "Password is longer than {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| Error::internal(format!("argon2 hash: {e}")))
    }

    /// Checks `password` against a stored PHC string. The comparison inside argon2 is
    /// constant-time; the cost parameters come from the stored hash, so raising the configured
    /// cost does not lock out existing users. Blocking.
    pub fn verify(&self, password: &str, phc: &str) -> Result<bool> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let parsed = PasswordHash::new(phc)
            .map_err(|e| Error::internal(format!("stored password hash unreadable: {e}")))?;
        Ok(self
            .argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let config = PasswordHashConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let hasher = PasswordHasherService::new(&config).unwrap();
        let phc = hasher.hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse", &phc).unwrap());
        assert!(!hasher.verify("wrong", &phc).unwrap());
    }
}
