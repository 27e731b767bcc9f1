//! `hearth media delete …`: records go at once, a shared file only with its last record.

use std::process::Command;

use reqwest::StatusCode;

use super::{files_under, get, media_dir, mxc_path, upload_ok};
use crate::common::TestServer;

fn hearth(server: &TestServer, args: &[&str]) -> std::process::Output {
    let config = format!("database_path = {:?}\n", server.config.database_path);
    std::fs::write(server.config_path(), config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(server.config_path())
        .args(args)
        .output()
        .expect("hearth runs")
}

// Multi-threaded: the CLI process blocks this thread while the in-process server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_media_removes_the_file_with_its_last_record() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let first = upload_ok(&server, &alice.token, b"shared".to_vec(), "text/plain").await;
    let second = upload_ok(&server, &alice.token, b"shared".to_vec(), "text/plain").await;
    let blobs = || files_under(&media_dir(&server)).len();
    assert_eq!(blobs(), 1);
    let download = |mxc: String| {
        let path = format!("/_matrix/client/v1/media/download/{}", mxc_path(&mxc));
        let token = alice.token.clone();
        let server = &server;
        async move { get(server, &path, Some(&token)).await.status() }
    };

    let output = hearth(&server, &["media", "delete", &first]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(download(first.clone()).await, StatusCode::NOT_FOUND);
    assert_eq!(download(second.clone()).await, StatusCode::OK);
    assert_eq!(blobs(), 1, "the other record still names the file");
    let output = hearth(&server, &["media", "delete", &first]);
    assert!(!output.status.success(), "deleting twice fails");

    let other = upload_ok(&server, &alice.token, b"other".to_vec(), "text/plain").await;
    let output = hearth(&server, &["media", "delete-user", "alice"]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("deleted 2 media"));
    assert_eq!(download(second).await, StatusCode::NOT_FOUND);
    assert_eq!(download(other).await, StatusCode::NOT_FOUND);
    assert_eq!(blobs(), 0, "no record names a file any more");
}
