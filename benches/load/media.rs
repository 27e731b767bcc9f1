//! The `media` scenario: upload and download of a large file (MiB/s, server CPU per MiB, and
//! the server's peak RSS during an upload over its RSS before it, which stays small when the
//! body is streamed rather than buffered), then thumbnail latency for 4000×3000 JPEGs: the
//! first request of each (made on demand, or pre-made at upload by servers that do so) and a
//! repeated one (cached).

use std::{
    io::Cursor,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::{Cli, Client, Failure, ProcWindow, latency_summary, proc_stats, round, settle};

const MIB: f64 = 1024.0 * 1024.0;

/// Pseudo-random bytes (xorshift): incompressible, cheap to make, different per `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A `width`×`height` JPEG of smooth gradients with some noise (a photo-like workload).
fn photo(width: u32, height: u32, seed: u64) -> Result<Vec<u8>, Failure> {
    let grain = noise((width * height) as usize, seed);
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        let n = grain[(y * width + x) as usize] / 8;
        image::Rgb([
            ((x * 255 / width) as u8).wrapping_add(n),
            ((y * 255 / height) as u8).wrapping_add(n),
            (((x + y) / 32) as u8).wrapping_add(n),
        ])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

async fn upload(client: &Client, bytes: Vec<u8>, content_type: &str) -> Result<String, Failure> {
    let url = format!("{}/_matrix/media/v3/upload?filename=bench.bin", client.url);
    let response = client
        .http
        .post(&url)
        .bearer_auth(&client.token)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .map_err(|e| format!("upload failed: {e}"))?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("upload answered {status}: {value}"));
    }
    let uri = value["content_uri"].as_str().ok_or("no content_uri")?;
    Ok(uri.trim_start_matches("mxc://").to_owned())
}

/// GETs `path` to its last byte; returns the byte count.
async fn fetch(client: &Client, path: &str) -> Result<usize, Failure> {
    let url = format!("{}{path}", client.url);
    let mut response = client
        .http
        .get(&url)
        .bearer_auth(&client.token)
        .send()
        .await
        .map_err(|e| format!("{url} failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut total = 0;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        total += chunk.len();
    }
    Ok(total)
}

/// Samples the server's RSS every 5 ms until stopped; returns the peak.
fn sample_rss(pid: Option<u32>) -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some(stats) = proc_stats(pid) {
                    peak.fetch_max(stats.rss_kib, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak.load(Ordering::SeqCst)
        }
    });
    (stop, task)
}

fn cpu_ms(pid: Option<u32>) -> f64 {
    proc_stats(pid).map_or(0.0, |s| s.cpu_ms)
}

pub async fn run(
    cli: &Cli,
    http: &reqwest::Client,
    size_mib: usize,
    rounds: usize,
    photos: usize,
) -> Result<(usize, Value, ProcWindow), Failure> {
    let url = cli.url.trim_end_matches('/');
    let mut window = ProcWindow::default();
    let client = Client::register(http, url, &format!("{}media", cli.prefix)).await?;
    let size = size_mib * 1024 * 1024;
    let files: Vec<Vec<u8>> = (0..rounds).map(|i| noise(size, 7 + i as u64)).collect();
    let mibs = (size * rounds) as f64 / MIB;

    settle(cli.pid, &cli.also_idle).await;
    window.start(cli.pid);
    let idle_rss = proc_stats(cli.pid).map_or(0, |s| s.rss_kib);
    let (stop, sampler) = sample_rss(cli.pid);
    let (cpu, started) = (cpu_ms(cli.pid), Instant::now());
    let mut ids = Vec::new();
    for file in files {
        ids.push(upload(&client, file, "application/octet-stream").await?);
    }
    let upload_s = started.elapsed().as_secs_f64();
    let upload_cpu = cpu_ms(cli.pid) - cpu;
    stop.store(true, Ordering::SeqCst);
    let peak_rss = sampler.await.map_err(|e| e.to_string())?;

    settle(cli.pid, &cli.also_idle).await;
    let (cpu, started) = (cpu_ms(cli.pid), Instant::now());
    for id in &ids {
        let got = fetch(&client, &format!("/_matrix/client/v1/media/download/{id}")).await?;
        if got != size {
            return Err(format!("downloaded {got} bytes of {size}"));
        }
    }
    let download_s = started.elapsed().as_secs_f64();
    let download_cpu = cpu_ms(cli.pid) - cpu;

    let mut first = Vec::new();
    let mut cached = Vec::new();
    for i in 0..photos {
        let id = upload(&client, photo(4000, 3000, 100 + i as u64)?, "image/jpeg").await?;
        settle(cli.pid, &cli.also_idle).await;
        let path =
            format!("/_matrix/client/v1/media/thumbnail/{id}?width=320&height=240&method=scale");
        for samples in [&mut first, &mut cached] {
            let t = Instant::now();
            fetch(&client, &path).await?;
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    window.stop(cli.pid);
    Ok((
        rounds,
        json!({
            "file_mib": size_mib,
            "upload_mib_per_s": round(mibs / upload_s),
            "upload_server_cpu_ms_per_mib": round(upload_cpu / mibs),
            "upload_peak_rss_over_idle_kib": peak_rss.saturating_sub(idle_rss),
            "download_mib_per_s": round(mibs / download_s),
            "download_server_cpu_ms_per_mib": round(download_cpu / mibs),
            "thumbnail_4000x3000_first": latency_summary(first),
            "thumbnail_4000x3000_cached": latency_summary(cached),
        }),
        window,
    ))
}
