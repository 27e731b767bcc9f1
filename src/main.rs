//! The `hearth` command line: `serve`, `user …`, `media …`, `config check`, `version`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use hearth::{
    Config, Server,
    admin::{self, AdminCommand, AdminReply},
};

#[derive(Parser)]
#[command(name = "hearth", version, about = "A Matrix homeserver")]
struct Cli {
    /// Configuration file (TOML). Without it, defaults and HEARTH_* variables apply.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the homeserver.
    Serve,
    /// Manage local accounts (works whether or not the server is running).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the media repository (works whether or not the server is running).
    Media {
        #[command(subcommand)]
        command: MediaCommand,
    },
    /// Abuse reports filed by users.
    Reports {
        #[command(subcommand)]
        command: ReportsCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. Without --password-file a random password is generated and printed.
    Create {
        name: String,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set a new password and log out all of the user's devices.
    ResetPassword {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List accounts.
    List,
}

#[derive(Subcommand)]
enum MediaCommand {
    /// Delete one media by its mxc:// URI (the file goes when no other media shares it).
    Delete { mxc: String },
    /// Delete every media a local user uploaded.
    DeleteUser { name: String },
}

#[derive(Subcommand)]
enum ReportsCommand {
    /// List every report, oldest first, one JSON object per line.
    List,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print the effective values (secrets hidden).
    Check,
}

fn main() -> ExitCode {
    return_big_allocations_to_the_os();
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("hearth {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve => runtime.block_on(serve(config)),
        Command::User { command } => runtime.block_on(user(config, command)),
        Command::Media { command } => {
            let command = match command {
                MediaCommand::Delete { mxc } => AdminCommand::DeleteMedia { mxc },
                MediaCommand::DeleteUser { name } => AdminCommand::DeleteUserMedia { user: name },
            };
            runtime.block_on(admin_command(config, command, None))
        }
        Command::Reports {
            command: ReportsCommand::List,
        } => runtime.block_on(admin_command(config, AdminCommand::ListReports, None)),
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(&config),
        Command::Version => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Password hashing allocates 19 MiB per hash. glibc's malloc raises its mmap threshold after
/// such a block is freed and then keeps later ones in per-thread arenas, so a few logins on
/// different blocking threads would pin ~20 MiB each. A fixed threshold keeps big blocks
/// mmapped and returned to the OS when freed (idle RSS stays ~20 MiB instead of ~100 MiB).
/// It sits at 4 MiB, above an initial sync's response buffer (~1 MiB for 50 busy rooms): those
/// come from the heap, whose free space is kept up to the trim threshold, instead of fresh
/// pages faulted in on every request.
fn return_big_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 * 1024 * 1024);
    }
}

fn init_logging(config: &Config) {
    // ruma's authorization checks log every decision at info; keep them at warn unless the
    // operator asks for them by name.
    let directives = if config.log_level.contains("ruma_state_res") {
        config.log_level.clone()
    } else {
        format!("{},ruma_state_res=warn", config.log_level)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ruma_state_res=warn"));
    // Colours only on a terminal: files and journald get plain `key=value` lines.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colour)
        .init();
}

async fn serve(config: Config) -> Result<(), String> {
    init_logging(&config);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn read_password(file: Option<&PathBuf>) -> Result<(String, bool), String> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let password = text.trim_end_matches(['\n', '\r']).to_owned();
            if password.is_empty() {
                return Err(format!("{} holds an empty password", path.display()));
            }
            Ok((password, false))
        }
        None => Ok((hearth::util::random_alphanumeric(20), true)),
    }
}

async fn user(config: Config, command: UserCommand) -> Result<(), String> {
    let (command, generated) = match command {
        UserCommand::Create {
            name,
            admin,
            password_file,
        } => {
            let (password, generated) = read_password(password_file.as_ref())?;
            (
                AdminCommand::CreateUser {
                    name,
                    admin,
                    password: password.clone(),
                },
                generated.then_some(password),
            )
        }
        UserCommand::ResetPassword {
            name,
            password_file,
        } => {
            let (password, generated) = read_password(password_file.as_ref())?;
            (
                AdminCommand::ResetPassword {
                    name,
                    password: password.clone(),
                },
                generated.then_some(password),
            )
        }
        UserCommand::List => (AdminCommand::ListUsers, None),
    };
    admin_command(config, command, generated).await
}

/// Runs an admin command on the running server, or here when none runs, and prints the reply.
async fn admin_command(
    config: Config,
    command: AdminCommand,
    generated: Option<String>,
) -> Result<(), String> {
    let reply = match admin::send(&config, &command).await {
        Ok(Some(reply)) => reply,
        Ok(None) => run_offline(config, command).await?,
        Err(e) => return Err(format!("cannot talk to the running server: {e}")),
    };
    match reply {
        AdminReply::Created { user_id } => println!("created {user_id}"),
        AdminReply::PasswordReset { user_id } => {
            println!("password of {user_id} reset; its devices are logged out")
        }
        AdminReply::Users { users } => {
            for user in users {
                let flags = match (user.admin, user.deactivated) {
                    (true, true) => " (admin, deactivated)",
                    (true, false) => " (admin)",
                    (false, true) => " (deactivated)",
                    (false, false) => "",
                };
                println!("{}{flags}", user.user_id);
            }
        }
        AdminReply::Reports { reports } => {
            for report in reports {
                println!(
                    "{}",
                    serde_json::to_string(&report).map_err(|e| e.to_string())?
                );
            }
        }
        AdminReply::MediaDeleted { count } => println!("deleted {count} media"),
        AdminReply::Failed { error } => return Err(error),
    }
    if let Some(password) = generated {
        println!("password: {password}");
    }
    Ok(())
}

/// No server is running: open the database in this process and run the command here.
async fn run_offline(config: Config, command: AdminCommand) -> Result<AdminReply, String> {
    let config = std::sync::Arc::new(config);
    let db = hearth::storage::Db::open(&config.database_path, &config.storage)
        .map_err(|e| e.to_string())?;
    let services = hearth::service::Services::new(config, db.clone()).map_err(|e| e.to_string())?;
    let reply = std::sync::Arc::new(services)
        .blocking(move |s| Ok(admin::execute(s, command)))
        .await
        .map_err(|e| e.to_string())?;
    db.flush().map_err(|e| e.to_string())?;
    Ok(reply)
}

fn config_check(config: &Config) -> Result<(), String> {
    let mut shown = config.clone();
    for secret in [
        &mut shown.registration_token,
        &mut shown.registration_shared_secret,
    ] {
        if secret.is_some() {
            *secret = Some("<hidden>".to_owned());
        }
    }
    let text = toml::to_string_pretty(&shown).map_err(|e| e.to_string())?;
    println!("{text}");
    for warning in config.warnings() {
        println!("# warning: {warning}");
    }
    println!("# configuration is valid");
    Ok(())
}
