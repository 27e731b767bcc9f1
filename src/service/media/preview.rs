//! URL previews: fetch a page a user posted, read its OpenGraph title, description and image,
//! store the image as media and cache the answer.
//!
//! Every request goes through the egress policy: only public addresses unless the operator
//! allows private ones. Names are checked after DNS resolution (here, for a clear error, and
//! again in the client's resolver, so a name that changes its answer in between still cannot
//! reach a private address); IP-literal hosts skip DNS, so they are checked here; redirects
//! are followed by hand so each hop is checked the same way. Size, time and redirect limits
//! come from `[media]`.

use std::{net::IpAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::StatusCode;
use reqwest::Url;
use serde_json::{Map, Value, json};

use super::{MediaService, NewUpload, PreviewRecord, media_error, now_ms};
use crate::{
    config::MediaConfig,
    error::{Error, Result},
    service::egress,
};

/// How long a fetched preview is served from the cache.
const CACHE_FOR_MS: u64 = 3600 * 1000;

/// The HTTP side of previews.
pub struct Previewer {
    client: reqwest::Client,
    allow_private: bool,
    deny: Vec<String>,
    max_size: usize,
    timeout: Duration,
    max_redirects: usize,
}

impl Previewer {
    pub fn new(config: &MediaConfig) -> Result<Self> {
        let timeout = Duration::from_secs(config.url_preview_timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "hearth/",
                env!("CARGO_PKG_VERSION"),
                " (URL preview)"
            ))
            .dns_resolver(Arc::new(egress::PolicyResolver::new(
                config.url_preview_allow_private_addresses,
            )))
            .build()
            .map_err(|e| Error::internal(format!("URL preview HTTP client: {e}")))?;
        Ok(Self {
            client,
            allow_private: config.url_preview_allow_private_addresses,
            deny: config
                .url_preview_deny_domains
                .iter()
                .map(|d| d.trim_matches('.').to_ascii_lowercase())
                .collect(),
            max_size: config.url_preview_max_size,
            timeout,
            max_redirects: config.url_preview_max_redirects,
        })
    }

    fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || egress::is_public(ip)
    }

    /// Refuses a URL whose scheme, domain or address the policy forbids.
    async fn check(&self, url: &Url) -> Result<()> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid_param(
                "Only http and https URLs can be previewed",
            ));
        }
        let refused =
            || Error::forbidden("This URL is not on a public address; it cannot be previewed");
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !self.allows(IpAddr::V4(ip)) => Err(refused()),
            Some(url::Host::Ipv6(ip)) if !self.allows(IpAddr::V6(ip)) => Err(refused()),
            Some(url::Host::Domain(domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                if self
                    .deny
                    .iter()
                    .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
                {
                    return Err(Error::forbidden("Previews of this domain are disabled"));
                }
                let port = url.port_or_known_default().unwrap_or(80);
                let addrs: Vec<_> = tokio::net::lookup_host((domain.as_str(), port))
                    .await
                    .map_err(|e| fetch_failed(format!("cannot resolve {domain}: {e}")))?
                    .collect();
                if addrs.iter().any(|a| self.allows(a.ip())) {
                    Ok(())
                } else {
                    Err(refused())
                }
            }
            Some(_) => Ok(()),
            None => Err(Error::invalid_param("The URL has no host")),
        }
    }

    /// GETs `url`, following up to `max_redirects` redirects, each checked; returns the final
    /// URL, its content type and at most `max_size` bytes of body (more is an error).
    async fn fetch(&self, url: Url) -> Result<(Url, String, Bytes)> {
        let mut url = url;
        for _ in 0..=self.max_redirects {
            self.check(&url).await?;
            let response = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| fetch_failed(e.without_url()))?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| fetch_failed("a redirect without a Location"))?;
                url = url
                    .join(location)
                    .map_err(|e| fetch_failed(format!("a redirect to a bad URL: {e}")))?;
                continue;
            }
            if !response.status().is_success() {
                return Err(fetch_failed(format!(
                    "the server answered {}",
                    response.status()
                )));
            }
            if response
                .content_length()
                .is_some_and(|len| len > self.max_size as u64)
            {
                return Err(too_big(self.max_size));
            }
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned();
            let body = read_limited(response, self.max_size).await?;
            return Ok((url, content_type, body));
        }
        Err(fetch_failed(format!(
            "more than {} redirects",
            self.max_redirects
        )))
    }
}

fn fetch_failed(detail: impl std::fmt::Display) -> Error {
    media_error(
        StatusCode::BAD_GATEWAY,
        "M_UNKNOWN",
        format!("Could not fetch the URL to preview: {detail}"),
    )
}

fn too_big(limit: usize) -> Error {
    media_error(
        StatusCode::BAD_GATEWAY,
        "M_TOO_LARGE",
        format!("The page is larger than the {limit} bytes this server reads for a preview"),
    )
}

/// Reads a body chunk by chunk, stopping past `limit`.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Bytes> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fetch_failed(e.without_url()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_big(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// The essence of a content type, lowercased (`text/html; charset=…` → `text/html`).
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// OpenGraph properties of an HTML page, with `<title>` and the description meta tag as
/// fallbacks; `og:image` made absolute against the page's URL.
pub fn open_graph(html: &str, page: &Url) -> Map<String, Value> {
    let document = scraper::Html::parse_document(html);
    let mut og = Map::new();
    if let Ok(meta) = scraper::Selector::parse("meta[content]") {
        for element in document.select(&meta) {
            let value = element.value();
            let Some(key) = value.attr("property").or_else(|| value.attr("name")) else {
                continue;
            };
            let content = value.attr("content").unwrap_or_default();
            if key.starts_with("og:") && !og.contains_key(key) {
                og.insert(key.to_owned(), json!(content));
            } else if key.eq_ignore_ascii_case("description") && !og.contains_key("og:description")
            {
                og.insert("og:description".into(), json!(content));
            }
        }
    }
    if !og.contains_key("og:title")
        && let Ok(title) = scraper::Selector::parse("title")
        && let Some(element) = document.select(&title).next()
    {
        let text: String = element.text().collect();
        let text = text.trim();
        if !text.is_empty() {
            og.insert("og:title".into(), json!(text));
        }
    }
    if let Some(Value::String(image)) = og.get("og:image") {
        match page.join(image) {
            Ok(absolute) => og.insert("og:image".into(), json!(absolute.to_string())),
            Err(_) => og.remove("og:image"),
        };
    }
    og
}

impl MediaService {
    /// The preview of `url` for `user` (`GET …/preview_url`), from the cache when fresh.
    pub async fn preview(self: &Arc<Self>, url: &str, user: &str) -> Result<Value> {
        if !self.config.url_preview {
            return Err(Error::forbidden("URL previews are disabled on this server"));
        }
        let parsed =
            Url::parse(url).map_err(|e| Error::invalid_param(format!("Not a URL: {e}")))?;
        let this = self.clone();
        let key = url.to_owned();
        let cached = tokio::task::spawn_blocking(move || this.previews.get(&key))
            .await
            .map_err(|e| Error::internal(format!("preview cache: {e}")))??;
        if let Some(record) = cached
            && record.fetched_ms + CACHE_FOR_MS > now_ms()
        {
            // The policy may have changed since: a cached answer obeys today's deny list too.
            self.previewer.check(&parsed).await?;
            return Ok(record.data);
        }
        let previewer = &self.previewer;
        let data = tokio::time::timeout(previewer.timeout, self.fetch_preview(parsed, user))
            .await
            .map_err(|_| fetch_failed("it took too long"))??;
        let this = self.clone();
        let record = PreviewRecord {
            fetched_ms: now_ms(),
            data: data.clone(),
        };
        let key = url.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut batch = this.db.batch();
            this.previews.put(&mut batch, &key, &record);
            this.db.write(batch)
        })
        .await
        .map_err(|e| Error::internal(format!("preview cache: {e}")))??;
        Ok(data)
    }

    async fn fetch_preview(self: &Arc<Self>, url: Url, user: &str) -> Result<Value> {
        let (final_url, content_type, body) = self.previewer.fetch(url).await?;
        let kind = essence(&content_type);
        if kind.starts_with("image/") {
            return Ok(Value::Object(self.preview_image(body, &kind, user).await?));
        }
        if kind != "text/html" && kind != "application/xhtml+xml" {
            return Ok(json!({}));
        }
        let html = String::from_utf8_lossy(&body);
        let mut og = open_graph(&html, &final_url);
        if let Some(Value::String(image)) = og.remove("og:image")
            && let Ok(image_url) = Url::parse(&image)
        {
            // An image that cannot be fetched leaves the preview without one, not failed.
            match self.previewer.fetch(image_url).await {
                Ok((_, image_type, bytes)) => {
                    let kind = essence(&image_type);
                    if kind.starts_with("image/") {
                        og.extend(self.preview_image(bytes, &kind, user).await?);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "preview image not fetched"),
            }
        }
        Ok(Value::Object(og))
    }

    /// Stores a preview's image as media; returns its `og:image*` and `matrix:image:size`.
    async fn preview_image(
        self: &Arc<Self>,
        bytes: Bytes,
        kind: &str,
        user: &str,
    ) -> Result<Map<String, Value>> {
        let size = bytes.len();
        let dimensions = image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .ok()
            .and_then(|reader| reader.into_dimensions().ok());
        let temp = self
            .store
            .write_all(bytes)
            .await
            .map_err(|e| Error::internal(format!("storing a preview image: {e}")))?;
        let this = self.clone();
        let upload = NewUpload {
            uploader: user.to_owned(),
            content_type: Some(kind.to_owned()),
            filename: None,
            reserved_id: None,
        };
        let mxc = tokio::task::spawn_blocking(move || this.commit_upload(temp, upload))
            .await
            .map_err(|e| Error::internal(format!("storing a preview image: {e}")))??;
        let mut og = Map::new();
        og.insert("og:image".into(), json!(mxc.to_string()));
        og.insert("og:image:type".into(), json!(kind));
        og.insert("matrix:image:size".into(), json!(size));
        if let Some((width, height)) = dimensions {
            og.insert("og:image:width".into(), json!(width));
            og.insert("og:image:height".into(), json!(height));
        }
        Ok(og)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_graph_reads_properties_and_falls_back_to_title() {
        let page = Url::parse("http://example.org/a/page.html").unwrap();
        let og = open_graph(
            r#"<html><head><title>T</title><meta property="og:title" content="The Rock">
            <meta property="og:image" content="img.png"><meta name="description" content="D">
            </head></html>"#,
            &page,
        );
        assert_eq!(og["og:title"], "The Rock");
        assert_eq!(og["og:image"], "http://example.org/a/img.png");
        assert_eq!(og["og:description"], "D");
        let og = open_graph("<title> Only a title </title>", &page);
        assert_eq!(og["og:title"], "Only a title");
    }

    #[tokio::test]
    async fn loopback_and_denied_domains_are_refused() {
        let config = MediaConfig {
            url_preview: true,
            url_preview_deny_domains: vec!["example.com".into()],
            ..MediaConfig::default()
        };
        let previewer = Previewer::new(&config).unwrap();
        for url in [
            "http://127.0.0.1/",
            "http://[::1]:8008/",
            "http://localhost/",
            "http://www.example.com/",
        ] {
            let error = previewer
                .check(&Url::parse(url).unwrap())
                .await
                .unwrap_err();
            assert_eq!(error.errcode(), "M_FORBIDDEN", "{url}");
        }
        let error = previewer
            .check(&Url::parse("file:///etc/passwd").unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.errcode(), "M_INVALID_PARAM");
    }
}
