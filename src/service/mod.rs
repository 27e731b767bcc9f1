//! Domain logic, free of HTTP: one struct per area owning its tables, gathered in [`Services`].

pub mod accounts;
pub mod password;
pub mod profiles;
pub mod ratelimit;
pub mod sessions;
pub mod shared_secret;
pub mod uiaa;
pub mod users;

use std::sync::Arc;

use crate::{config::Config, error::Result, storage::Db};

/// Every service, built once at start and shared by all requests.
pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub users: users::UserService,
    pub sessions: sessions::SessionService,
    pub profiles: profiles::ProfileService,
    pub uiaa: uiaa::UiaaService,
    pub rate_limiter: ratelimit::RateLimiter,
    pub shared_secret: shared_secret::SharedSecretRegistration,
}

impl Services {
    pub fn new(config: Arc<Config>, db: Db) -> Result<Self> {
        let hasher = password::PasswordHasherService::new(&config.password_hash)?;
        Ok(Self {
            users: users::UserService::new(db.clone(), config.server_name(), hasher),
            sessions: sessions::SessionService::new(db.clone(), config.access_token_lifetime_secs),
            profiles: profiles::ProfileService::new(db.clone()),
            uiaa: uiaa::UiaaService::default(),
            rate_limiter: ratelimit::RateLimiter::new(config.rate_limits.clone()),
            shared_secret: shared_secret::SharedSecretRegistration::default(),
            db,
            config,
        })
    }
}
