//! Hearth, a Matrix homeserver: one binary, embedded RocksDB.
//!
//! [`Server::start`] is the single entry point used by `hearth serve` and by the integration
//! tests: it opens the database, builds the services and serves HTTP until shut down.

pub mod admin;
pub mod api;
pub mod config;
pub mod error;
pub mod listener;
pub mod service;
pub mod storage;
pub mod util;

use std::{
    net::SocketAddr,
    sync::{Arc, Weak},
    time::Duration,
};

use axum::serve::ListenerExt;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub use config::Config;
use service::Services;
use storage::Db;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the admin socket {path}: {source}")]
    AdminSocket {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Services(error::Error),
    #[error(transparent)]
    Tls(#[from] listener::TlsError),
}

/// Namespace for [`Server::start`].
pub struct Server;

/// A started server. Dropping it without [`RunningServer::shutdown`] leaves it running until
/// the runtime ends.
pub struct RunningServer {
    client_addr: SocketAddr,
    federation_addr: Option<SocketAddr>,
    services: Weak<Services>,
    stop: watch::Sender<bool>,
    http_task: JoinHandle<()>,
    federation_task: Option<JoinHandle<()>>,
    admin_task: JoinHandle<()>,
    presence_task: JoinHandle<()>,
    /// Delivers queued pushes to push gateways.
    push_task: JoinHandle<()>,
    /// Wakes syncs for E2EE key changes.
    key_change_task: JoinHandle<()>,
    /// Delivers the outgoing federation queue.
    federation_sender_task: JoinHandle<()>,
    notification_sweep_task: JoinHandle<()>,
    db: Db,
}

impl Server {
    /// Opens storage, binds the listeners and starts serving.
    pub async fn start(config: Config) -> Result<RunningServer, StartError> {
        let config = Arc::new(config);
        let db = {
            let path = config.database_path.clone();
            let storage = config.storage.clone();
            tokio::task::spawn_blocking(move || Db::open(&path, &storage))
                .await
                .map_err(|e| StartError::Services(error::Error::internal(e)))??
        };
        let services =
            Arc::new(Services::new(config.clone(), db.clone()).map_err(StartError::Services)?);

        let addr = SocketAddr::new(config.address, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let client_addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr, source })?;

        let federation = if config.federation.enabled {
            let tls = listener::tls_acceptor(&config.federation)?;
            let addr = SocketAddr::new(config.federation.address, config.federation.port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| StartError::Listen { addr, source })?;
            Some((listener, tls, local))
        } else {
            None
        };

        let admin_task =
            admin::serve(services.clone()).map_err(|source| StartError::AdminSocket {
                path: admin::socket_path(&config).display().to_string(),
                source,
            })?;

        let presence_task = tokio::spawn({
            let services = services.clone();
            let period = Duration::from_secs(config.presence.idle_timeout_secs.max(1)) / 4;
            async move {
                let mut ticks = tokio::time::interval(
                    period.clamp(Duration::from_millis(250), Duration::from_secs(30)),
                );
                loop {
                    ticks.tick().await;
                    let sweep = services.clone();
                    match tokio::task::spawn_blocking(move || sweep.sweep_presence()).await {
                        Ok(Err(e)) => tracing::warn!(error = %e, "presence sweep failed"),
                        Err(e) => tracing::warn!(error = %e, "presence sweep task failed"),
                        Ok(Ok(())) => {}
                    }
                }
            }
        });

        let push_task = tokio::spawn(service::push::gateway::run_sender(
            Arc::downgrade(&services),
            config.push.clone(),
        ));
        let notification_sweep_task = tokio::spawn(service::push::retention::run_sweeper(
            Arc::downgrade(&services),
            config.push.notification_retention_days,
        ));
        let key_change_task =
            tokio::spawn(service::e2ee::changes::run_waker(Arc::downgrade(&services)));
        let federation_sender_task =
            tokio::spawn(service::federation::sender::run(Arc::downgrade(&services)));

        let (stop, mut stopped) = watch::channel(false);
        let app = api::router(services.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let http_task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            // Responses go out as soon as they are written: with Nagle's algorithm the tail of
            // a large answer waits for the client's (possibly delayed) ACK.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        let (federation_addr, federation_task) = match federation {
            Some((listener, tls, local)) => {
                tracing::info!(federation_addr = %local, tls = tls.is_some(), "federation listener is up");
                let task = tokio::spawn(listener::serve(
                    listener,
                    tls,
                    api::federation::router(services.clone()),
                    stop.subscribe(),
                ));
                (Some(local), Some(task))
            }
            None => (None, None),
        };
        tracing::info!(%client_addr, server_name = %config.server_name, "hearth is listening");
        Ok(RunningServer {
            client_addr,
            federation_addr,
            federation_task,
            services: Arc::downgrade(&services),
            stop,
            http_task,
            admin_task,
            presence_task,
            push_task,
            key_change_task,
            federation_sender_task,
            notification_sweep_task,
            db,
        })
    }
}

/// Longest a shutdown waits for in-flight requests before closing storage anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl RunningServer {
    /// Where the client API listens (useful with port 0).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Where the federation listener listens, when `federation.enabled`.
    pub fn federation_addr(&self) -> Option<SocketAddr> {
        self.federation_addr
    }

    /// The running services (tests and tools inspect storage through them); `None` once the
    /// server has stopped.
    pub fn services(&self) -> Option<Arc<Services>> {
        self.services.upgrade()
    }

    /// Stops accepting requests, lets in-flight ones finish, syncs and closes the database.
    /// When this returns, the data dir can be opened again.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Long-polls answer and WebSocket syncs end now instead of at their timeouts.
        if let Some(services) = self.services.upgrade() {
            services.notifier.close();
        }
        self.admin_task.abort();
        let _ = self.admin_task.await;
        self.presence_task.abort();
        let _ = self.presence_task.await;
        self.push_task.abort();
        let _ = self.push_task.await;
        self.key_change_task.abort();
        let _ = self.key_change_task.await;
        self.federation_sender_task.abort();
        let _ = self.federation_sender_task.await;
        self.notification_sweep_task.abort();
        let _ = self.notification_sweep_task.await;
        if tokio::time::timeout(SHUTDOWN_GRACE, self.http_task)
            .await
            .is_err()
        {
            tracing::warn!("requests still running after the grace period; closing anyway");
        }
        if let Some(task) = self.federation_task
            && tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err()
        {
            tracing::warn!("federation listener still running after the grace period");
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "flushing the database at shutdown failed");
        }
        let _ = std::fs::remove_file(match self.services.upgrade() {
            Some(services) => admin::socket_path(&services.config),
            None => std::path::PathBuf::new(),
        });
        drop(self.db);
        // The database closes when the last handle goes; requests finishing on other tasks may
        // still hold one for a moment.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.services.strong_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!("hearth stopped");
    }
}
