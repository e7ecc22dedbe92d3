//! The Google Cloud Storage bucket (`gs://BUCKET[/PREFIX]`), through the official
//! `google-cloud-storage` client for object writes (with generation preconditions and the
//! CRC32C the service checks) and reads. Listing and deleting, which that client offers
//! only over gRPC (which the emulator does not speak), use the same service's JSON API
//! (`GET /storage/v1/b/{bucket}/o`, `DELETE …/o/{object}`) with the same credentials.
//!
//! With `$STORAGE_EMULATOR_HOST` set (the convention of Google's own clients), every call
//! goes to that address with anonymous credentials; otherwise to Google with
//! application-default credentials. Each call is bounded in time so a store that stops
//! answering turns into a reported error, not a hung sync.

use std::time::Duration;

use bytes::Bytes;
use google_cloud_auth::credentials::{CacheableResource, Credentials};
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage;

use super::store::{ObjectMeta, Precondition, StoreError};

/// The longest one call may take before it counts as a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A GCS bucket, with an optional prefix under which all names live.
#[derive(Clone)]
pub struct GcsBucket {
    storage: Storage,
    http: reqwest::Client,
    endpoint: String,
    credentials: Credentials,
    anonymous: bool,
    bucket: String,
    prefix: String,
}

impl std::fmt::Debug for GcsBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcsBucket({})", self.url())
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    // Boxed: the client's futures are large, and a caller's stack need not hold them.
    tokio::time::timeout(CALL_TIMEOUT, Box::pin(call))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "{what}: no answer in {CALL_TIMEOUT:?}"
            )))
        })
}

/// The generation a write must match: 0 for create-only, none for no precondition.
fn generation_match(pre: Precondition) -> Option<i64> {
    match pre {
        Precondition::None => None,
        Precondition::DoesNotExist => Some(0),
        Precondition::GenerationMatches(g) => Some(g),
    }
}

/// A failed write: a precondition that did not hold, or the store out of reach.
fn classify(name: &str, e: &google_cloud_storage::Error) -> StoreError {
    let text = e.to_string();
    if e.http_status_code() == Some(412)
        || text.contains("Precondition")
        || text.contains("FAILED_PRECONDITION")
    {
        StoreError::PreconditionFailed {
            name: name.to_string(),
        }
    } else {
        unavailable(format!("write {name}: {text}"))
    }
}

impl GcsBucket {
    /// Connects to `bucket`: at `emulator` with anonymous credentials, else at Google.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no credentials can be found.
    pub async fn open(
        bucket: &str,
        prefix: &str,
        emulator: Option<String>,
    ) -> Result<Self, StoreError> {
        let (endpoint, credentials, anonymous) = match emulator {
            Some(host) => {
                let endpoint = if host.starts_with("http") {
                    host
                } else {
                    format!("http://{host}")
                };
                let creds = google_cloud_auth::credentials::anonymous::Builder::new().build();
                (endpoint, creds, true)
            }
            None => {
                let creds = google_cloud_auth::credentials::Builder::default()
                    .build()
                    .map_err(|e| {
                        StoreError::Unavailable(format!("application-default credentials: {e}"))
                    })?;
                ("https://storage.googleapis.com".to_string(), creds, false)
            }
        };
        // Retry what the service calls retryable, a few times: the sync loop retries the
        // rest on its next tick, and lag reports the gap.
        let retry = google_cloud_storage::retry_policy::RetryableErrors.with_attempt_limit(3);
        let storage = Storage::builder()
            .with_endpoint(endpoint.clone())
            .with_credentials(credentials.clone())
            .with_retry_policy(retry)
            // One request per object: sync rounds hold their objects in memory anyway, and
            // a resumable session's extra round trips (and its second address) buy nothing.
            .with_resumable_upload_threshold(usize::MAX)
            .build()
            .await
            .map_err(unavailable)?;
        Ok(GcsBucket {
            storage,
            http: reqwest::Client::new(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            credentials,
            anonymous,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// `gs://bucket/prefix`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("gs://{}", self.bucket)
        } else {
            format!("gs://{}/{}", self.bucket, self.prefix)
        }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn short(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(&format!("{}/", self.prefix))
                .unwrap_or(full)
                .to_string()
        }
    }

    fn resource(&self) -> String {
        format!("projects/_/buckets/{}", self.bucket)
    }

    /// See [`super::store::Bucket::put`].
    pub async fn put(
        &self,
        name: &str,
        data: Bytes,
        pre: Precondition,
    ) -> Result<ObjectMeta, StoreError> {
        let crc = crc32c::crc32c(&data);
        let size = data.len() as u64;
        bounded("write", async {
            let mut write = self
                .storage
                .write_object(self.resource(), self.full(name), data);
            if let Some(g) = generation_match(pre) {
                write = write.set_if_generation_match(g);
            }
            let object = write
                .send_buffered()
                .await
                .map_err(|e| classify(name, &e))?;
            if let Some(stored) = object.checksums.as_ref().and_then(|c| c.crc32c)
                && stored != crc
            {
                return Err(StoreError::Corrupt {
                    name: name.to_string(),
                    reason: format!("CRC32C {stored:08x} stored, {crc:08x} sent"),
                });
            }
            Ok(ObjectMeta {
                name: name.to_string(),
                generation: object.generation,
                size,
            })
        })
        .await
    }

    /// See [`super::store::Bucket::put_file`].
    pub async fn put_file(
        &self,
        name: &str,
        src: &std::path::Path,
        pre: Precondition,
    ) -> Result<ObjectMeta, StoreError> {
        let path = src.to_path_buf();
        let digest = tokio::task::spawn_blocking(move || super::store::digest_file(&path))
            .await
            .map_err(unavailable)?
            .map_err(|e| unavailable(format!("read {}: {e}", src.display())))?;
        let file = tokio::fs::File::open(src)
            .await
            .map_err(|e| unavailable(format!("open {}: {e}", src.display())))?;
        // A large object takes longer than one small call's bound: allow for 10 MB/s.
        let limit = CALL_TIMEOUT + Duration::from_secs(digest.size / 10_000_000);
        tokio::time::timeout(
            limit,
            Box::pin(async {
                let mut write = self
                    .storage
                    .write_object(self.resource(), self.full(name), file)
                    .with_known_crc32c(digest.crc32c);
                if let Some(g) = generation_match(pre) {
                    write = write.set_if_generation_match(g);
                }
                let object = write
                    .send_unbuffered()
                    .await
                    .map_err(|e| classify(name, &e))?;
                Ok(ObjectMeta {
                    name: name.to_string(),
                    generation: object.generation,
                    size: digest.size,
                })
            }),
        )
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "write {name}: no answer in {limit:?}"
            )))
        })
    }

    /// See [`super::store::Bucket::get_to_file`].
    pub async fn get_to_file(
        &self,
        name: &str,
        dest: &std::path::Path,
    ) -> Result<Option<super::store::FileDigest>, StoreError> {
        use tokio::io::AsyncWriteExt as _;
        let mut resp = match Box::pin(
            self.storage
                .read_object(self.resource(), self.full(name))
                .send(),
        )
        .await
        {
            Ok(r) => r,
            Err(e) if e.http_status_code() == Some(404) => return Ok(None),
            Err(e) => return Err(unavailable(format!("read {name}: {e}"))),
        };
        let mut out = tokio::fs::File::create(dest)
            .await
            .map_err(|e| unavailable(format!("create {}: {e}", dest.display())))?;
        let mut digest = super::store::Digester::default();
        while let Some(chunk) = resp.next().await {
            let chunk = chunk.map_err(|e| unavailable(format!("read {name}: {e}")))?;
            digest.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| unavailable(format!("write {}: {e}", dest.display())))?;
        }
        out.sync_all()
            .await
            .map_err(|e| unavailable(format!("fsync {}: {e}", dest.display())))?;
        Ok(Some(digest.finish()))
    }

    /// See [`super::store::Bucket::get`].
    pub async fn get(&self, name: &str) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        bounded("read", async {
            let mut resp = match self
                .storage
                .read_object(self.resource(), self.full(name))
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) if e.http_status_code() == Some(404) => return Ok(None),
                Err(e) => return Err(unavailable(format!("read {name}: {e}"))),
            };
            let mut data = Vec::new();
            while let Some(chunk) = resp.next().await {
                data.extend_from_slice(
                    &chunk.map_err(|e| unavailable(format!("read {name}: {e}")))?,
                );
            }
            let generation = resp.object().generation;
            let size = data.len() as u64;
            Ok(Some((
                Bytes::from(data),
                ObjectMeta {
                    name: name.to_string(),
                    generation,
                    size,
                },
            )))
        })
        .await
    }

    async fn auth(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, StoreError> {
        if self.anonymous {
            return Ok(req);
        }
        match self
            .credentials
            .headers(http::Extensions::new())
            .await
            .map_err(unavailable)?
        {
            CacheableResource::New { data, .. } => Ok(req.headers(data)),
            CacheableResource::NotModified => Ok(req),
        }
    }

    /// See [`super::store::Bucket::list`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        bounded("list", async {
            let url = format!("{}/storage/v1/b/{}/o", self.endpoint, self.bucket);
            let mut out = Vec::new();
            let mut page: Option<String> = None;
            loop {
                let mut query = vec![
                    ("prefix", self.full(prefix)),
                    ("fields", "items(name,generation,size),nextPageToken".into()),
                ];
                if let Some(p) = &page {
                    query.push(("pageToken", p.clone()));
                }
                let req = self.auth(self.http.get(&url).query(&query)).await?;
                let resp = req
                    .send()
                    .await
                    .map_err(|e| unavailable(format!("list: {e}")))?;
                if !resp.status().is_success() {
                    return Err(unavailable(format!("list: HTTP {}", resp.status())));
                }
                let body: serde_json::Value = resp
                    .json()
                    .await
                    .map_err(|e| unavailable(format!("list: {e}")))?;
                for item in body["items"].as_array().into_iter().flatten() {
                    let num = |v: &serde_json::Value| {
                        v.as_str().and_then(|s| s.parse().ok()).or(v.as_i64())
                    };
                    out.push(ObjectMeta {
                        name: self.short(item["name"].as_str().unwrap_or_default()),
                        generation: num(&item["generation"]).unwrap_or_default(),
                        size: num(&item["size"]).unwrap_or_default() as u64,
                    });
                }
                match body["nextPageToken"].as_str() {
                    Some(p) if !p.is_empty() => page = Some(p.to_string()),
                    _ => break,
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    /// See [`super::store::Bucket::delete`].
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        bounded("delete", async {
            let object: String = self
                .full(name)
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    other => format!("%{other:02X}"),
                })
                .collect();
            let url = format!("{}/storage/v1/b/{}/o/{object}", self.endpoint, self.bucket);
            let resp = self
                .auth(self.http.delete(&url))
                .await?
                .send()
                .await
                .map_err(|e| unavailable(format!("delete {name}: {e}")))?;
            match resp.status().as_u16() {
                200..=299 | 404 => Ok(()),
                s => Err(unavailable(format!("delete {name}: HTTP {s}"))),
            }
        })
        .await
    }
}
