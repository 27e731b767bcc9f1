//! Administration commands (`hearth user …`) and the local admin socket that lets them reach a
//! running server. RocksDB allows one process per data dir, so while the server runs the CLI
//! sends its command over `<database_path>/admin.sock` (a Unix socket, mode 0600); when no
//! server runs, the CLI opens the database itself and runs the same code.

use std::{path::PathBuf, sync::Arc};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::{config::Config, error::Error, service::Services, service::users::UserSummary};

/// One admin command, as sent over the socket (one JSON line).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum AdminCommand {
    CreateUser {
        name: String,
        admin: bool,
        password: String,
    },
    ResetPassword {
        name: String,
        password: String,
    },
    ListUsers,
    ListReports,
    /// Deletes one media (`mxc://server/id`); its file goes when nothing else names it.
    DeleteMedia {
        mxc: String,
    },
    /// Deletes every media a local user uploaded.
    DeleteUserMedia {
        user: String,
    },
}

/// The answer to a command (one JSON line).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AdminReply {
    Created {
        user_id: String,
    },
    PasswordReset {
        user_id: String,
    },
    Users {
        users: Vec<UserSummary>,
    },
    Reports {
        reports: Vec<crate::service::reports::Report>,
    },
    MediaDeleted {
        count: usize,
    },
    Failed {
        error: String,
    },
}

/// Where the admin socket of a data dir lives.
pub fn socket_path(config: &Config) -> PathBuf {
    config.database_path.join("admin.sock")
}

fn describe(error: Error) -> String {
    match error {
        Error::Matrix {
            errcode, message, ..
        } => format!("{message} ({errcode})"),
        other => other.to_string(),
    }
}

/// Runs a command against the services (in the server, or in the CLI's own process).
/// Blocking (storage, password hashing): run it on the blocking pool.
pub fn execute(services: &Services, command: AdminCommand) -> AdminReply {
    run(services, command).unwrap_or_else(|e| AdminReply::Failed { error: describe(e) })
}

fn run(services: &Services, command: AdminCommand) -> Result<AdminReply, Error> {
    match command {
        AdminCommand::CreateUser {
            name,
            admin,
            password,
        } => {
            let user_id = services.users.validate_new_localpart(&name)?;
            services.create_account(&user_id, Some(password), admin, None, None)?;
            Ok(AdminReply::Created {
                user_id: user_id.to_string(),
            })
        }
        AdminCommand::ResetPassword { name, password } => {
            let user_id = services
                .users
                .resolve_login_name(&name)
                .filter(|id| services.users.exists(id).unwrap_or(false))
                .ok_or_else(|| Error::not_found(format!("No local user {name}")))?;
            services.admin_reset_password(&user_id, password)?;
            Ok(AdminReply::PasswordReset {
                user_id: user_id.to_string(),
            })
        }
        AdminCommand::ListUsers => Ok(AdminReply::Users {
            users: services.users.list()?,
        }),
        AdminCommand::ListReports => Ok(AdminReply::Reports {
            reports: services.reports.list()?,
        }),
        AdminCommand::DeleteMedia { mxc } => {
            let uri = ruma::OwnedMxcUri::from(mxc.as_str());
            let (server, media_id) = uri
                .parts()
                .map_err(|_| Error::invalid_param(format!("{mxc} is not an mxc:// URI")))?;
            if !services.media.delete(server, media_id)? {
                return Err(Error::not_found(format!("No media {mxc}")));
            }
            Ok(AdminReply::MediaDeleted { count: 1 })
        }
        AdminCommand::DeleteUserMedia { user } => {
            let user_id = services
                .users
                .resolve_login_name(&user)
                .ok_or_else(|| Error::not_found(format!("No local user {user}")))?;
            Ok(AdminReply::MediaDeleted {
                count: services.media.delete_user_media(&user_id)?,
            })
        }
    }
}

/// Binds the admin socket (replacing a stale one: we hold the database lock, so no other
/// server can be using it) and serves commands until the task is aborted.
pub fn serve(services: Arc<Services>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(&services.config);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let services = services.clone();
            tokio::spawn(async move {
                if let Err(e) = handle_connection(&services, stream).await {
                    tracing::warn!(error = %e, "admin socket connection failed");
                }
            });
        }
    }))
}

/// Largest command line accepted on the socket.
const MAX_COMMAND_BYTES: u64 = 64 * 1024;

async fn handle_connection(services: &Arc<Services>, stream: UnixStream) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_COMMAND_BYTES))
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<AdminCommand>(&line) {
        Ok(command) => {
            tracing::info!(command = ?redacted(&command), "admin command");
            services
                .blocking(move |s| Ok(execute(s, command)))
                .await
                .unwrap_or_else(|e| AdminReply::Failed { error: describe(e) })
        }
        Err(e) => AdminReply::Failed {
            error: format!("unreadable command: {e}"),
        },
    };
    let mut bytes = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

/// The command as it may be logged (without passwords).
fn redacted(command: &AdminCommand) -> String {
    match command {
        AdminCommand::CreateUser { name, admin, .. } => format!("create_user {name} admin={admin}"),
        AdminCommand::ResetPassword { name, .. } => format!("reset_password {name}"),
        AdminCommand::ListUsers => "list_users".to_owned(),
        AdminCommand::ListReports => "list_reports".to_owned(),
        AdminCommand::DeleteMedia { mxc } => format!("delete_media {mxc}"),
        AdminCommand::DeleteUserMedia { user } => format!("delete_user_media {user}"),
    }
}

/// Sends a command to a running server. `Ok(None)` when no server listens on the socket.
pub async fn send(config: &Config, command: &AdminCommand) -> std::io::Result<Option<AdminReply>> {
    let stream = match UnixStream::connect(socket_path(config)).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (read, mut write) = stream.into_split();
    let mut bytes = serde_json::to_vec(command).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    serde_json::from_str(&line)
        .map(Some)
        .map_err(std::io::Error::other)
}
