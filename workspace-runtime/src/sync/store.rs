//! The object store a workspace syncs to: a Google Cloud Storage bucket, or a local folder
//! (the embedded default), or an S3-compatible bucket (the hot mirror), behind one [`Bucket`] with the operations sync and restore
//! need. Writes that publish state take a [`Precondition`] (create-only, or the generation
//! the writer last saw), so two instances can never both believe they own a workspace.

use std::sync::Arc;

use bytes::Bytes;

use super::gcs::GcsBucket;
use super::local::LocalFolder;
use super::meter::OpMeter;
use super::s3::{S3Access, S3Bucket};

/// What an object write requires of the object's present state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: overwrite or create.
    None,
    /// The object must not exist (create-only).
    DoesNotExist,
    /// The object must exist at this generation.
    GenerationMatches(i64),
}

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its full name in the bucket.
    pub name: String,
    /// Its generation: changes with every write.
    pub generation: i64,
    /// Its size in bytes.
    pub size: u64,
}

/// Why an object-store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The precondition did not hold: someone else wrote the object.
    #[error(
        "precondition failed for {name}: the object changed (or exists) since it was last read"
    )]
    PreconditionFailed {
        /// The object.
        name: String,
    },
    /// The store could not be reached or refused the call.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// The bytes read back are not the bytes written.
    #[error("object {name} is corrupt: {reason}")]
    Corrupt {
        /// The object.
        name: String,
        /// What did not match.
        reason: String,
    },
    /// The bucket URL is not one this build can use.
    #[error("bucket {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// A bucket: `gs://BUCKET[/PREFIX]` or `file:///PATH`, with a tally of the operations
/// asked of it (shared by its clones), as the bill counts them.
#[derive(Debug, Clone)]
pub struct Bucket {
    backend: Backend,
    meter: Arc<OpMeter>,
}

/// Where a bucket's objects live.
#[derive(Debug, Clone)]
enum Backend {
    /// A local folder.
    Local(LocalFolder),
    /// A GCS bucket.
    Gcs(Box<GcsBucket>),
    /// An S3-compatible bucket (the mirror).
    S3(Box<S3Bucket>),
}

impl Bucket {
    /// Opens the bucket at `url` (`file:///abs/path` or `gs://bucket[/prefix]`). A GCS
    /// bucket talks to `$STORAGE_EMULATOR_HOST` with anonymous credentials when that is
    /// set, else to Google with application-default credentials.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`]; [`StoreError::Unavailable`] when credentials cannot be found.
    pub async fn open(url: &str) -> Result<Bucket, StoreError> {
        let emulator = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        Bucket::open_at(url, emulator).await
    }

    /// Opens the bucket at `url`; a GCS bucket talks to `emulator` (`host:port` or a URL)
    /// with anonymous credentials when given, else to Google.
    ///
    /// # Errors
    /// As [`Bucket::open`].
    pub async fn open_at(url: &str, emulator: Option<String>) -> Result<Bucket, StoreError> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(StoreError::BadUrl {
                    url: url.into(),
                    reason: "a file:// bucket needs an absolute path".into(),
                });
            }
            return Ok(Bucket::with(Backend::Local(LocalFolder::new(path.into()))));
        }
        if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::BadUrl {
                    url: url.into(),
                    reason: "no bucket name".into(),
                });
            }
            let gcs = Box::pin(GcsBucket::open(bucket, prefix, emulator)).await?;
            return Ok(Bucket::with(Backend::Gcs(Box::new(gcs))));
        }
        if url.starts_with("s3://") {
            return Bucket::open_s3(url, &S3Access::from_env());
        }
        Err(StoreError::BadUrl {
            url: url.into(),
            reason: "expected gs://BUCKET[/PREFIX], s3://BUCKET[/PREFIX] or file:///ABSOLUTE/PATH"
                .into(),
        })
    }

    /// Opens the S3-compatible bucket at `url` (`s3://BUCKET[/PREFIX]`) through `access`.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`].
    pub fn open_s3(url: &str, access: &S3Access) -> Result<Bucket, StoreError> {
        let rest = url.strip_prefix("s3://").unwrap_or_default();
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::BadUrl {
                url: url.into(),
                reason: "expected s3://BUCKET[/PREFIX]".into(),
            });
        }
        let s3 = S3Bucket::open(bucket, prefix, access)?;
        Ok(Bucket::with(Backend::S3(Box::new(s3))))
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
        self.meter.class_a(1);
        match &self.backend {
            Backend::Local(b) => b.put(name, data, pre).await,
            Backend::Gcs(b) => Box::pin(b.put(name, data, pre)).await,
            Backend::S3(b) => Box::pin(b.put(name, data, pre)).await,
        }
    }

    /// Writes the content of the file `src` to `name` if `pre` holds, streaming it (a
    /// database snapshot need not fit in memory).
    ///
    /// # Errors
    /// As [`Bucket::put`].
    pub async fn put_file(
        &self,
        name: &str,
        src: &std::path::Path,
        pre: Precondition,
    ) -> Result<ObjectMeta, StoreError> {
        self.meter.class_a(1);
        match &self.backend {
            Backend::Local(b) => b.put_file(name, src, pre).await,
            Backend::Gcs(b) => Box::pin(b.put_file(name, src, pre)).await,
            Backend::S3(b) => Box::pin(b.put_file(name, src, pre)).await,
        }
    }

    /// Streams the object into the file `dest`; its SHA-256 and size, or `None` when it
    /// does not exist.
    ///
    /// # Errors
    /// As [`Bucket::get`], and when `dest` cannot be written.
    pub async fn get_to_file(
        &self,
        name: &str,
        dest: &std::path::Path,
    ) -> Result<Option<FileDigest>, StoreError> {
        let got = match &self.backend {
            Backend::Local(b) => b.get_to_file(name, dest).await,
            Backend::Gcs(b) => Box::pin(b.get_to_file(name, dest)).await,
            Backend::S3(b) => Box::pin(b.get_to_file(name, dest)).await,
        };
        self.meter.read(match &got {
            Ok(Some(d)) => d.size,
            _ => 0,
        });
        got
    }

    /// The object's bytes and metadata, or `None` when it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn get(&self, name: &str) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        let got = match &self.backend {
            Backend::Local(b) => b.get(name).await,
            Backend::Gcs(b) => Box::pin(b.get(name)).await,
            Backend::S3(b) => Box::pin(b.get(name)).await,
        };
        self.meter.read(match &got {
            Ok(Some((b, _))) => b.len() as u64,
            _ => 0,
        });
        got
    }

    /// The objects whose names start with `prefix`, by name.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let listed = match &self.backend {
            Backend::Local(b) => b.list(prefix).await,
            Backend::Gcs(b) => Box::pin(b.list(prefix)).await,
            Backend::S3(b) => Box::pin(b.list(prefix)).await,
        };
        self.meter.list(listed.as_ref().map_or(0, Vec::len));
        listed
    }

    /// Deletes `name` (nothing when it does not exist).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.meter.delete();
        match &self.backend {
            Backend::Local(b) => b.delete(name).await,
            Backend::Gcs(b) => Box::pin(b.delete(name)).await,
            Backend::S3(b) => Box::pin(b.delete(name)).await,
        }
    }

    /// Where the bucket is, for messages.
    pub fn url(&self) -> String {
        match &self.backend {
            Backend::Local(b) => format!("file://{}", b.root().display()),
            Backend::Gcs(b) => b.url(),
            Backend::S3(b) => b.url(),
        }
    }

    /// The tally of operations asked of this bucket (and its clones).
    pub fn meter(&self) -> &OpMeter {
        &self.meter
    }

    fn with(backend: Backend) -> Bucket {
        Bucket {
            backend,
            meter: Arc::new(OpMeter::default()),
        }
    }
}

/// A file's checksums, computed as it streams by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// SHA-256, hex.
    pub sha256: String,
    /// CRC32C (what GCS checks).
    pub crc32c: u32,
    /// Bytes.
    pub size: u64,
}

/// Checksums of bytes as they stream by.
#[derive(Debug, Default)]
pub struct Digester {
    sha: sha2::Sha256,
    crc: u32,
    size: u64,
}

impl Digester {
    /// Takes the next piece.
    pub fn update(&mut self, piece: &[u8]) {
        use sha2::Digest as _;
        self.sha.update(piece);
        self.crc = crc32c::crc32c_append(self.crc, piece);
        self.size += piece.len() as u64;
    }

    /// The checksums of everything taken.
    pub fn finish(self) -> FileDigest {
        use sha2::Digest as _;
        FileDigest {
            sha256: hex::encode(self.sha.finalize()),
            crc32c: self.crc,
            size: self.size,
        }
    }
}

/// Reads `from` to its end, handing each piece to `sink`; the checksums of it all.
fn stream_digest(
    mut from: impl std::io::Read,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<FileDigest> {
    let mut d = Digester::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(d.finish());
        }
        d.update(&buf[..n]);
        sink(&buf[..n])?;
    }
}

/// Copies `from` to `to` (then fsyncs `to`), computing the checksums on the way.
///
/// # Errors
/// When reading or writing fails.
pub fn copy_digest(from: impl std::io::Read, mut to: std::fs::File) -> std::io::Result<FileDigest> {
    use std::io::Write as _;
    let digest = stream_digest(from, |piece| to.write_all(piece))?;
    to.sync_all()?;
    Ok(digest)
}

/// The checksums of the file at `path`.
///
/// # Errors
/// When it cannot be read.
pub fn digest_file(path: &std::path::Path) -> std::io::Result<FileDigest> {
    stream_digest(std::fs::File::open(path)?, |_| Ok(()))
}
