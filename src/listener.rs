//! The federation listener: plain HTTP, or HTTPS with a certificate and key from PEM files
//! (rustls through tokio-rustls), serving the federation router (`api::federation`) until
//! told to stop.
//!
//! Each accepted connection does its TLS handshake on its own task, so a slow or broken client
//! never holds up the accept loop.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

use crate::config::FederationConfig;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("federation TLS: {0}")]
pub struct TlsError(String);

/// Builds the rustls server configuration from `tls_certificate` and `tls_private_key`, or
/// `None` when neither is set (plain HTTP).
pub fn tls_acceptor(config: &FederationConfig) -> Result<Option<TlsAcceptor>, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&config.tls_certificate, &config.tls_private_key)
    else {
        return Ok(None);
    };
    let certs = load_certificates(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        TlsError(format!(
            "cannot read a private key from {}: {e}",
            key_file.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError(format!(
                "{} and {} do not form a usable certificate: {e}",
                cert_file.display(),
                key_file.display()
            ))
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// Every certificate in a PEM file; an empty file is an error.
pub fn load_certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            TlsError(format!(
                "cannot read certificates from {}: {e}",
                file.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsError(format!("{} holds no certificate", file.display())));
    }
    Ok(certs)
}

/// Serves `app` on `listener` until `stop` turns true. With `tls`, every connection is
/// HTTPS; without it, plain HTTP.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "federation listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let app = app.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, app, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "federation TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "federation TLS handshake timed out"),
                    }
                }
                None => serve_connection(tcp, peer, app, stop).await,
            }
        });
    }
}

/// One HTTP/1.1 connection; ends after the current request when the server stops.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let app = app.layer(axum::Extension(axum::extract::ConnectInfo(peer)));
    let service = TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "federation connection ended with an error");
            }
        }
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "federation connection ended with an error");
            }
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
