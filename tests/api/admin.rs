//! `hearth user …` and `hearth config check`, against a running server (admin socket) and a
//! stopped one (direct database access).

use std::process::Command;

use reqwest::StatusCode;

use crate::common::TestServer;

fn hearth(server: &TestServer, args: &[&str]) -> std::process::Output {
    let config = format!(
        "database_path = {:?}\n[password_hash]\nmemory_kib = 64\niterations = 1\n",
        server.config.database_path
    );
    std::fs::write(server.config_path(), config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(server.config_path())
        .args(args)
        .env_remove("HEARTH_PORT")
        .output()
        .expect("hearth runs")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// Multi-threaded: the CLI process blocks this thread while the in-process server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_work_while_running_and_while_stopped() {
    let mut server = TestServer::start().await;
    let password_file = server.dir.path().join("pw");
    std::fs::write(&password_file, "from-file\n").unwrap();
    let pw = password_file.to_str().unwrap();

    let output = hearth(
        &server,
        &["user", "create", "carol", "--admin", "--password-file", pw],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("@carol:localhost"));
    assert_eq!(
        server.login("carol", "from-file").await.0,
        StatusCode::OK,
        "created through the running server"
    );

    let output = hearth(&server, &["user", "create", "carol", "--password-file", pw]);
    assert!(!output.status.success(), "duplicate must fail");
    assert!(String::from_utf8_lossy(&output.stderr).contains("M_USER_IN_USE"));

    let output = hearth(&server, &["user", "reset-password", "carol"]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let generated = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("generated password printed");
    assert_eq!(
        server.login("carol", "from-file").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.login("carol", generated).await.0, StatusCode::OK);

    server.stop().await;
    let output = hearth(&server, &["user", "create", "dave", "--password-file", pw]);
    assert!(output.status.success(), "offline create: {output:?}");
    let output = hearth(&server, &["user", "list"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("@carol:localhost (admin)") && text.contains("@dave:localhost"),
        "{text}"
    );

    server.restart().await;
    assert_eq!(
        server.login("dave", "from-file").await.0,
        StatusCode::OK,
        "offline write is visible"
    );
}

#[tokio::test]
async fn config_check_validates() {
    let server = TestServer::start().await;
    let output = hearth(&server, &["config", "check"]);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("configuration is valid"));
    std::fs::write(server.config_path(), "port = \"not a number\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "--config",
            server.config_path().to_str().unwrap(),
            "config",
            "check",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("port"));
}
