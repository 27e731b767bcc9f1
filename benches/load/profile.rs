//! The `profile` scenario: a user in R rooms changes their display name; measured are the
//! update's answer time, the time until every room carries the new member event (seen by an
//! observer's `/sync` in all rooms), and how another user's `/sync` answers meanwhile.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Cli, Client, Failure, ProcWindow, latency_summary, round, settle};

/// How long propagation may take before the scenario reports an error.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(300);

pub async fn run(
    cli: &Cli,
    http: &reqwest::Client,
    rooms: usize,
) -> Result<(usize, Value, ProcWindow), Failure> {
    let url = cli.url.trim_end_matches('/');
    let prefix = &cli.prefix;
    let mover = Client::register(http, url, &format!("{prefix}profile-mover")).await?;
    let observer = Client::register(http, url, &format!("{prefix}profile-observer")).await?;
    let bystander = Client::register(http, url, &format!("{prefix}profile-bystander")).await?;
    let mut room_ids = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        let room = observer.create_room(true).await?;
        mover.join(&room).await?;
        room_ids.push(room);
    }
    // The bystander shares one room with the observer: its syncs are the "everyone else".
    bystander.join(&room_ids[0]).await?;
    let mut since = observer.sync(None, 0).await?["next_batch"]
        .as_str()
        .ok_or("no next_batch")?
        .to_owned();
    let bystander_since = bystander.sync(None, 0).await?["next_batch"]
        .as_str()
        .ok_or("no next_batch")?
        .to_owned();
    settle(cli.pid, &cli.also_idle).await;

    let mut window = ProcWindow::default();
    window.start(cli.pid);
    let started = Instant::now();
    let name = format!("{prefix} renamed");
    let path = format!(
        "/_matrix/client/v3/profile/@{prefix}profile-mover:{}/displayname",
        server_name(&observer).await?
    );
    mover.put(&path, json!({ "displayname": name })).await?;
    let update_ms = started.elapsed().as_secs_f64() * 1000.0;

    // The bystander keeps syncing while the rooms are updated.
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let poller = {
        let bystander = bystander.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let since = bystander_since;
            while !*done_rx.borrow_and_update() {
                let path =
                    format!("/_matrix/client/v3/sync?since={since}&timeout=0&set_presence=offline");
                let (_, ms) = bystander.get_timed(&path).await?;
                latencies.push(ms);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<Vec<f64>, Failure>(latencies)
        })
    };

    let mut updated = std::collections::HashSet::new();
    while updated.len() < rooms {
        if started.elapsed() > PROPAGATION_LIMIT {
            return Err(format!(
                "only {} of {rooms} rooms had the new member event after {}s",
                updated.len(),
                PROPAGATION_LIMIT.as_secs()
            ));
        }
        let body = observer.sync(Some(&since), 5_000).await?;
        since = body["next_batch"]
            .as_str()
            .ok_or("no next_batch")?
            .to_owned();
        if let Some(joined) = body["rooms"]["join"].as_object() {
            for (room, entry) in joined {
                let renamed = entry["timeline"]["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["type"] == "m.room.member" && e["content"]["displayname"] == name);
                if renamed {
                    updated.insert(room.clone());
                }
            }
        }
    }
    let propagated_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _ = done_tx.send(true);
    let sync_latencies = poller.await.map_err(|e| e.to_string())??;
    window.stop(cli.pid);
    Ok((
        rooms,
        json!({
            "rooms": rooms,
            "update_ms": round(update_ms),
            "all_rooms_updated_ms": round(propagated_ms),
            "other_user_sync": latency_summary(sync_latencies),
        }),
        window,
    ))
}

/// The server name, from the observer's own user id.
async fn server_name(client: &Client) -> Result<String, Failure> {
    let whoami = client.get("/_matrix/client/v3/account/whoami").await?;
    let user = whoami["user_id"].as_str().ok_or("no user_id")?;
    Ok(user.split_once(':').ok_or("odd user id")?.1.to_owned())
}
