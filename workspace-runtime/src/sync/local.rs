//! The local-folder bucket (`file:///PATH`, the embedded default): objects are files under
//! the folder, named as in GCS. A write goes to a temporary file, is fsynced and renamed
//! into place, so a reader never sees half an object. Generations are the files'
//! modification times in nanoseconds, forced to grow with every write, and preconditions
//! are checked under an exclusive lock on the folder's lock file, so two processes sharing
//! the folder get the same guarantees GCS gives.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::store::{ObjectMeta, Precondition, StoreError};

/// The folder's lock file (not an object).
const LOCK: &str = ".coditect-bucket.lock";

/// A bucket in a local folder.
#[derive(Debug, Clone)]
pub struct LocalFolder {
    root: PathBuf,
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let at = format!("{what} {}", path.display());
    move |e| StoreError::Unavailable(format!("{at}: {e}"))
}

fn generation(path: &Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i64)
}

fn joined(e: tokio::task::JoinError) -> StoreError {
    StoreError::Unavailable(format!("bucket worker: {e}"))
}

impl LocalFolder {
    /// The bucket at `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        LocalFolder { root }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        if name.is_empty()
            || name
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(StoreError::BadUrl {
                url: name.into(),
                reason: "not a valid object name".into(),
            });
        }
        Ok(self.root.join(name))
    }

    /// See [`super::store::Bucket::put`].
    pub async fn put(
        &self,
        name: &str,
        data: Bytes,
        pre: Precondition,
    ) -> Result<ObjectMeta, StoreError> {
        let (root, path, name) = (self.root.clone(), self.path(name)?, name.to_string());
        tokio::task::spawn_blocking(move || {
            put_blocking(&root, &path, &name, Source::Bytes(&data), pre)
        })
        .await
        .map_err(joined)?
    }

    /// See [`super::store::Bucket::put_file`].
    pub async fn put_file(
        &self,
        name: &str,
        src: &Path,
        pre: Precondition,
    ) -> Result<ObjectMeta, StoreError> {
        let (root, path, name, src) = (
            self.root.clone(),
            self.path(name)?,
            name.to_string(),
            src.to_path_buf(),
        );
        tokio::task::spawn_blocking(move || {
            put_blocking(&root, &path, &name, Source::File(&src), pre)
        })
        .await
        .map_err(joined)?
    }

    /// See [`super::store::Bucket::get_to_file`].
    pub async fn get_to_file(
        &self,
        name: &str,
        dest: &Path,
    ) -> Result<Option<super::store::FileDigest>, StoreError> {
        let (path, dest) = (self.path(name)?, dest.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let src = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io("read", &path)(e)),
            };
            let out = File::create(&dest).map_err(io("create", &dest))?;
            super::store::copy_digest(src, out)
                .map(Some)
                .map_err(io("copy", &dest))
        })
        .await
        .map_err(joined)?
    }

    /// See [`super::store::Bucket::get`].
    pub async fn get(&self, name: &str) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        let (path, name) = (self.path(name)?, name.to_string());
        tokio::task::spawn_blocking(move || {
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io("read", &path)(e)),
            };
            let meta = ObjectMeta {
                name,
                generation: generation(&path).unwrap_or_default(),
                size: data.len() as u64,
            };
            Ok(Some((Bytes::from(data), meta)))
        })
        .await
        .map_err(joined)?
    }

    /// See [`super::store::Bucket::list`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            // Start at the deepest folder the prefix names, not at the bucket's root.
            let start = match prefix.rfind('/') {
                Some(i) => root.join(&prefix[..i]),
                None => root.clone(),
            };
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("list", &dir)(e)),
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let file = entry.file_name().to_string_lossy().to_string();
                    if path.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    if is_internal(&file) {
                        continue; // the lock file and writes in flight
                    }
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let name = rel.to_string_lossy().to_string();
                    if name.starts_with(&prefix) {
                        let size = entry.metadata().map(|m| m.len()).unwrap_or_default();
                        let generation = generation(&path).unwrap_or_default();
                        out.push(ObjectMeta {
                            name,
                            generation,
                            size,
                        });
                    }
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
        .map_err(joined)?
    }

    /// See [`super::store::Bucket::delete`].
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("delete", &path)(e)),
        }
    }
}

/// What a write stores: bytes in memory, or a file's content.
enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// The folder's own files, which are not objects: its lock file, and a write in flight
/// (`.{name}.{16 hex}.tmp`). Every other name is an object, dot-files (`.env`,
/// `.gitignore`) included.
fn is_internal(file: &str) -> bool {
    if file == LOCK {
        return true;
    }
    let Some(inner) = file.strip_prefix('.').and_then(|f| f.strip_suffix(".tmp")) else {
        return false;
    };
    inner
        .rsplit_once('.')
        .is_some_and(|(_, hex)| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn put_blocking(
    root: &Path,
    path: &Path,
    name: &str,
    source: Source<'_>,
    pre: Precondition,
) -> Result<ObjectMeta, StoreError> {
    let parent = path.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).map_err(io("create folder", parent))?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{file}.{:016x}.tmp", rand::random::<u64>()));
    let result = (|| {
        let (f, size) = match source {
            Source::Bytes(data) => {
                let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
                f.write_all(data).map_err(io("write", &tmp))?;
                (f, data.len() as u64)
            }
            Source::File(src) => {
                let size = std::fs::copy(src, &tmp).map_err(io("copy", src))?;
                (
                    OpenOptions::new()
                        .write(true)
                        .open(&tmp)
                        .map_err(io("open", &tmp))?,
                    size,
                )
            }
        };
        f.sync_all().map_err(io("fsync", &tmp))?;
        std::fs::create_dir_all(root).map_err(io("create folder", root))?;
        let lock_path = root.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        lock.lock().map_err(io("lock", &lock_path))?;
        let current = generation(path);
        let holds = match pre {
            Precondition::None => true,
            Precondition::DoesNotExist => current.is_none(),
            Precondition::GenerationMatches(g) => current == Some(g),
        };
        if !holds {
            return Err(StoreError::PreconditionFailed { name: name.into() });
        }
        // The new generation: now, but always past the one it replaces.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i64;
        let next = now.max(current.unwrap_or(0) + 1);
        f.set_modified(UNIX_EPOCH + Duration::from_nanos(next as u64))
            .map_err(io("set time", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("rename", path))?;
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync", parent))?;
        Ok(ObjectMeta {
            name: name.into(),
            generation: generation(path).unwrap_or(next),
            size,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn dot_files_are_objects_and_the_folders_own_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = LocalFolder::new(dir.path().to_path_buf());
        for name in ["p/.env", "p/.keep", "p/a.txt"] {
            bucket
                .put(name, Bytes::from_static(b""), Precondition::None)
                .await
                .unwrap();
        }
        std::fs::write(dir.path().join("p/.a.txt.0123456789abcdef.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join(LOCK), b"").unwrap();
        let names: Vec<String> = bucket
            .list("p/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, vec!["p/.env", "p/.keep", "p/a.txt"]);
        assert!(
            bucket
                .list("")
                .await
                .unwrap()
                .iter()
                .all(|o| !o.name.contains(LOCK))
        );
    }
}
