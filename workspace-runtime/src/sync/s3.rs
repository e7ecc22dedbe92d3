//! An S3-compatible bucket (`s3://BUCKET[/PREFIX]`: Cloudflare R2, AWS S3, MinIO), the
//! hot mirror's store. Requests are signed with `rusty-s3` (SigV4 presigned URLs, no I/O
//! of its own) and sent with the `reqwest` client the rest of the runtime uses, so the
//! mirror adds a signing crate to the build rather than a second HTTP stack.
//!
//! S3 has no object generations; its conditional writes compare ETags (`If-None-Match: *`
//! to create only, `If-Match: ETAG` to replace only what was read; R2 and AWS both honour
//! them atomically). A [`Precondition::GenerationMatches`] is mapped onto them: an
//! object's generation is a number derived from its ETag, and the ETag last seen for each
//! name is kept, so a compare-and-swap sends exactly the ETag the caller read. (Two writes
//! of identical bytes share an ETag: a manifest never repeats, since it carries the time
//! it was written.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rusty_s3::{Credentials, S3Action, UrlStyle};
use sha2::{Digest, Sha256};

use super::store::{Digester, FileDigest, ObjectMeta, Precondition, StoreError};

/// The longest one small call may take before it counts as a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a whole-file transfer may take.
const FILE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a signed URL stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(600);

/// How to reach an S3-compatible service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Access {
    /// `https://ACCOUNT.r2.cloudflarestorage.com`, `http://127.0.0.1:9000`…
    pub endpoint: String,
    /// The region to sign for (`auto` for R2).
    pub region: String,
    /// Access key id and secret; none: unsigned requests.
    pub key: Option<(String, String)>,
}

impl S3Access {
    /// From the AWS SDKs' environment variables: `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL`, `AWS_REGION` (default `auto`), `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`.
    pub fn from_env() -> S3Access {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        S3Access {
            endpoint: var("AWS_ENDPOINT_URL_S3")
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .unwrap_or_default(),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "auto".into()),
            key: var("AWS_ACCESS_KEY_ID").zip(var("AWS_SECRET_ACCESS_KEY")),
        }
    }
}

/// An S3 bucket, with an optional prefix under which all names live.
#[derive(Clone)]
pub struct S3Bucket {
    http: reqwest::Client,
    bucket: rusty_s3::Bucket,
    credentials: Option<Credentials>,
    prefix: String,
    /// The ETag last seen for each full key: what a compare-and-swap sends.
    etags: Arc<Mutex<HashMap<String, String>>>,
}

impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Bucket({})", self.url())
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The generation an ETag stands for: positive, stable, different for different ETags.
pub(crate) fn generation_of(etag: &str) -> i64 {
    let d = Sha256::digest(etag.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) >> 1) as i64 + 1
}

impl S3Bucket {
    /// The bucket `name` at `access`, objects under `prefix`.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] when the endpoint is missing or not an http(s) URL.
    pub fn open(name: &str, prefix: &str, access: &S3Access) -> Result<S3Bucket, StoreError> {
        let url = format!("s3://{name}/{prefix}");
        let bad = |reason: String| StoreError::BadUrl {
            url: url.clone(),
            reason,
        };
        if access.endpoint.is_empty() {
            return Err(bad(
                "no endpoint: set storage.s3.endpoint or AWS_ENDPOINT_URL".into(),
            ));
        }
        let endpoint: reqwest::Url = access
            .endpoint
            .parse()
            .map_err(|e| bad(format!("endpoint {:?}: {e}", access.endpoint)))?;
        let bucket = rusty_s3::Bucket::new(
            endpoint,
            UrlStyle::Path,
            name.to_string(),
            access.region.clone(),
        )
        .map_err(|e| bad(format!("endpoint {:?}: {e:?}", access.endpoint)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(unavailable)?;
        Ok(S3Bucket {
            http,
            bucket,
            credentials: access
                .key
                .as_ref()
                .map(|(id, secret)| Credentials::new(id.clone(), secret.clone())),
            prefix: prefix.trim_matches('/').to_string(),
            etags: Arc::default(),
        })
    }

    /// Where the bucket is, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket.name())
        } else {
            format!("s3://{}/{}", self.bucket.name(), self.prefix)
        }
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn seen(&self, key: &str, etag: Option<&str>) {
        if let Ok(mut m) = self.etags.lock() {
            match etag {
                Some(e) => {
                    m.insert(key.to_string(), e.to_string());
                }
                None => {
                    m.remove(key);
                }
            }
        }
    }

    fn known_etag(&self, key: &str) -> Option<String> {
        self.etags.lock().ok().and_then(|m| m.get(key).cloned())
    }

    /// The ETag a compare-and-swap on `key` at `generation` must send, or why it cannot
    /// hold.
    async fn etag_for(&self, name: &str, key: &str, generation: i64) -> Result<String, StoreError> {
        if let Some(e) = self
            .known_etag(key)
            .filter(|e| generation_of(e) == generation)
        {
            return Ok(e);
        }
        let failed = || StoreError::PreconditionFailed {
            name: name.to_string(),
        };
        let url = self
            .bucket
            .head_object(self.credentials.as_ref(), key)
            .sign(SIGNED_FOR);
        let resp = self.send(self.http.head(url), CALL_TIMEOUT, name).await?;
        match resp.status().as_u16() {
            200 => {
                let etag = etag_header(&resp).ok_or_else(failed)?;
                self.seen(key, Some(&etag));
                if generation_of(&etag) == generation {
                    Ok(etag)
                } else {
                    Err(failed())
                }
            }
            404 => Err(failed()),
            s => Err(unavailable(format!("head {name}: HTTP {s}"))),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        limit: Duration,
        name: &str,
    ) -> Result<reqwest::Response, StoreError> {
        request
            .timeout(limit)
            .send()
            .await
            .map_err(|e| unavailable(format!("{name}: {e}")))
    }

    /// Writes `body` (of `len` bytes) to `name` if `pre` holds.
    async fn put_body(
        &self,
        name: &str,
        body: reqwest::Body,
        len: u64,
        pre: Precondition,
        limit: Duration,
    ) -> Result<ObjectMeta, StoreError> {
        let key = self.key(name);
        let condition = match pre {
            Precondition::None => None,
            Precondition::DoesNotExist => Some(("if-none-match", "*".to_string())),
            Precondition::GenerationMatches(g) => {
                Some(("if-match", self.etag_for(name, &key, g).await?))
            }
        };
        let mut action = self.bucket.put_object(self.credentials.as_ref(), &key);
        if let Some((header, value)) = &condition {
            action.headers_mut().insert(*header, value.clone());
        }
        let url = action.sign(SIGNED_FOR);
        let mut request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        if let Some((header, value)) = &condition {
            request = request.header(*header, value);
        }
        let resp = self.send(request, limit, name).await?;
        match resp.status().as_u16() {
            200..=299 => {
                let etag = etag_header(&resp)
                    .ok_or_else(|| unavailable(format!("write {name}: no ETag in the answer")))?;
                self.seen(&key, Some(&etag));
                Ok(ObjectMeta {
                    name: name.to_string(),
                    generation: generation_of(&etag),
                    size: len,
                })
            }
            // 412: the condition did not hold; 409: a concurrent conditional write won
            // (R2, AWS); 404 on If-Match: the object is gone.
            412 | 409 => Err(StoreError::PreconditionFailed { name: name.into() }),
            404 if condition.is_some() => Err(StoreError::PreconditionFailed { name: name.into() }),
            s => {
                let text = resp.text().await.unwrap_or_default();
                Err(unavailable(format!(
                    "write {name}: HTTP {s}: {}",
                    text.chars().take(300).collect::<String>()
                )))
            }
        }
    }

    /// Writes `data` to `name` if `pre` holds.
    ///
    /// # Errors
    /// [`StoreError::PreconditionFailed`]; [`StoreError::Unavailable`].
    pub async fn put(
        &self,
        name: &str,
        data: Bytes,
        pre: Precondition,
    ) -> Result<ObjectMeta, StoreError> {
        let len = data.len() as u64;
        self.put_body(name, data.into(), len, pre, CALL_TIMEOUT)
            .await
    }

    /// Streams the file `src` to `name` if `pre` holds.
    ///
    /// # Errors
    /// As [`S3Bucket::put`], and when `src` cannot be read.
    pub async fn put_file(
        &self,
        name: &str,
        src: &std::path::Path,
        pre: Precondition,
    ) -> Result<ObjectMeta, StoreError> {
        let file = tokio::fs::File::open(src)
            .await
            .map_err(|e| unavailable(format!("open {}: {e}", src.display())))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| unavailable(format!("stat {}: {e}", src.display())))?
            .len();
        self.put_body(name, file.into(), len, pre, FILE_TIMEOUT)
            .await
    }

    async fn get_response(
        &self,
        name: &str,
        limit: Duration,
    ) -> Result<Option<(reqwest::Response, String)>, StoreError> {
        let key = self.key(name);
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), &key)
            .sign(SIGNED_FOR);
        let resp = self.send(self.http.get(url), limit, name).await?;
        match resp.status().as_u16() {
            200 => Ok(Some((resp, key))),
            404 => {
                self.seen(&key, None);
                Ok(None)
            }
            s => Err(unavailable(format!("read {name}: HTTP {s}"))),
        }
    }

    /// The object's bytes and metadata, or `None` when it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn get(&self, name: &str) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        let Some((resp, key)) = self.get_response(name, CALL_TIMEOUT).await? else {
            return Ok(None);
        };
        let etag = etag_header(&resp).unwrap_or_default();
        let data = resp
            .bytes()
            .await
            .map_err(|e| unavailable(format!("read {name}: {e}")))?;
        self.seen(&key, Some(&etag));
        Ok(Some((
            data.clone(),
            ObjectMeta {
                name: name.to_string(),
                generation: generation_of(&etag),
                size: data.len() as u64,
            },
        )))
    }

    /// Streams the object into `dest`; its checksums, or `None` when it does not exist.
    ///
    /// # Errors
    /// As [`S3Bucket::get`], and when `dest` cannot be written.
    pub async fn get_to_file(
        &self,
        name: &str,
        dest: &std::path::Path,
    ) -> Result<Option<FileDigest>, StoreError> {
        use std::io::Write as _;
        let Some((mut resp, _)) = self.get_response(name, FILE_TIMEOUT).await? else {
            return Ok(None);
        };
        let local = |e: std::io::Error| unavailable(format!("write {}: {e}", dest.display()));
        let mut out = std::io::BufWriter::new(std::fs::File::create(dest).map_err(local)?);
        let mut digest = Digester::default();
        while let Some(piece) = resp
            .chunk()
            .await
            .map_err(|e| unavailable(format!("read {name}: {e}")))?
        {
            digest.update(&piece);
            out.write_all(&piece).map_err(local)?;
        }
        let file = out.into_inner().map_err(|e| local(e.into_error()))?;
        file.sync_all().map_err(local)?;
        Ok(Some(digest.finish()))
    }

    /// The objects whose names start with `prefix`, by name (ListObjectsV2, page by page).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let full = self.key(prefix);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(self.credentials.as_ref());
            action.with_prefix(full.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGNED_FOR);
            let resp = self.send(self.http.get(url), CALL_TIMEOUT, prefix).await?;
            let status = resp.status().as_u16();
            let text = resp
                .text()
                .await
                .map_err(|e| unavailable(format!("list {prefix}: {e}")))?;
            if status != 200 {
                return Err(unavailable(format!("list {prefix}: HTTP {status}")));
            }
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|e| unavailable(format!("list {prefix}: {e}")))?;
            for o in page.contents {
                let etag = o.etag.unwrap_or_default();
                self.seen(&o.key, Some(&etag));
                out.push(ObjectMeta {
                    name: o.key.strip_prefix(&strip).unwrap_or(&o.key).to_string(),
                    generation: generation_of(&etag),
                    size: o.size.unwrap_or(0),
                });
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes `name` (nothing when it does not exist).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let key = self.key(name);
        let url = self
            .bucket
            .delete_object(self.credentials.as_ref(), &key)
            .sign(SIGNED_FOR);
        let resp = self.send(self.http.delete(url), CALL_TIMEOUT, name).await?;
        match resp.status().as_u16() {
            200..=299 | 404 => {
                self.seen(&key, None);
                Ok(())
            }
            s => Err(unavailable(format!("delete {name}: HTTP {s}"))),
        }
    }
}

fn etag_header(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_positive_and_follow_the_etag() {
        let (a, b) = (generation_of("\"abc\""), generation_of("\"abd\""));
        assert!(a > 0 && b > 0);
        assert_ne!(a, b);
        assert_eq!(a, generation_of("\"abc\""));
    }

    #[test]
    fn a_bucket_without_an_endpoint_says_how_to_give_one() {
        let err = S3Bucket::open("b", "", &S3Access::default()).unwrap_err();
        assert!(err.to_string().contains("AWS_ENDPOINT_URL"), "{err}");
    }
}
