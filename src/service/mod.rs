//! Domain logic, free of HTTP: one struct per area owning its tables, gathered in [`Services`].

pub mod account_data;
pub mod cache;
pub mod e2ee;
pub mod egress;
pub mod ephemeral;
pub mod federation;
pub mod keyed_locks;
pub mod media;
pub mod notifier;
pub mod push;
pub mod ratelimit;
pub mod reports;
pub mod rooms;
pub mod server_keys;
pub mod server_notices;
pub mod sync;
pub mod unread;
pub mod users;

use ephemeral::{presence, to_device};
use users::{password, profiles, sessions, shared_secret, uiaa};

use std::sync::Arc;

use crate::{
    config::Config,
    error::{Error, Result},
    storage::Db,
};

/// Every service, built once at start and shared by all requests.
pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub users: users::UserService,
    pub sessions: sessions::SessionService,
    pub profiles: profiles::ProfileService,
    /// Profile changes on their way into the member events of the user's rooms.
    pub profile_rooms: users::profile_rooms::ProfileRooms,
    pub uiaa: uiaa::UiaaService,
    pub rate_limiter: ratelimit::RateLimiter,
    pub shared_secret: shared_secret::SharedSecretRegistration,
    pub keys: Arc<server_keys::ServerKeys>,
    pub rooms: rooms::RoomService,
    pub aliases: rooms::aliases::AliasService,
    pub reports: reports::ReportService,
    pub notifier: Arc<notifier::Notifier>,
    pub filters: sync::FilterStore,
    pub account_data: account_data::AccountDataService,
    pub ephemeral: ephemeral::EphemeralService,
    pub to_device: to_device::ToDeviceService,
    pub presence: presence::PresenceService,
    pub egress: egress::Egress,
    /// Other servers: keys, requests, the outgoing queue.
    pub federation: federation::FederationService,
    pub push: Arc<push::PushService>,
    pub e2ee: Arc<e2ee::E2eeService>,
    pub media: Arc<media::MediaService>,
}

impl Services {
    pub fn new(config: Arc<Config>, db: Db) -> Result<Self> {
        let hasher = password::PasswordHasherService::new(&config.password_hash)?;
        let keys = Arc::new(server_keys::ServerKeys::load_or_create(
            &db,
            config.server_name(),
        )?);
        let notifier = Arc::new(notifier::Notifier::default());
        let push = Arc::new(push::PushService::new(&db, notifier.clone())?);
        let e2ee = e2ee::E2eeService::new(&db);
        let device_hooks: Vec<Arc<dyn sessions::DeviceHook>> =
            vec![push.pushers.clone(), e2ee.clone()];
        let egress = egress::Egress::new(&config.federation)?;
        let outbound = Arc::new(federation::queue::OutboundQueue::new(&db));
        Ok(Self {
            media: media::MediaService::new(db.clone(), &config)?,
            federation: federation::FederationService::new(
                &db,
                &egress,
                keys.clone(),
                outbound.clone(),
            ),
            egress,
            rooms: rooms::RoomService::new(
                db.clone(),
                keys.clone(),
                notifier.clone(),
                push.clone(),
                outbound,
                config.storage.event_cache_entries,
            ),
            aliases: rooms::aliases::AliasService::new(db.clone()),
            reports: reports::ReportService::new(db.clone()),
            filters: sync::FilterStore::new(db.clone()),
            ephemeral: ephemeral::EphemeralService::new(db.clone()),
            to_device: to_device::ToDeviceService::new(db.clone()),
            presence: presence::PresenceService::new(
                db.clone(),
                std::time::Duration::from_secs(config.presence.idle_timeout_secs.max(1)),
            ),
            account_data: account_data::AccountDataService::new(db.clone(), notifier.clone()),
            notifier,
            keys,
            users: users::UserService::new(db.clone(), config.server_name(), hasher),
            sessions: sessions::SessionService::new(
                db.clone(),
                config.access_token_lifetime_secs,
                device_hooks,
            ),
            push,
            e2ee,
            profiles: profiles::ProfileService::new(db.clone()),
            profile_rooms: Default::default(),
            uiaa: uiaa::UiaaService::default(),
            rate_limiter: ratelimit::RateLimiter::new(config.rate_limits.clone()),
            shared_secret: shared_secret::SharedSecretRegistration::default(),
            db,
            config,
        })
    }
}

impl Services {
    /// Runs blocking service code (RocksDB writes, signing) off the async workers.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Services) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let services = self.clone();
        tokio::task::spawn_blocking(move || work(&services))
            .await
            .map_err(|e| Error::internal(format!("blocking task: {e}")))?
    }
}
