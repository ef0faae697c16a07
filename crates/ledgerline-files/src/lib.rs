//! Where uploads and reports live when several processes share them: the
//! [`FileStore`] trait and its implementation over the `object_store`
//! crate, [`ObjectFiles`]: `file:///shared/dir` (a directory every process
//! sees; the embedded server's data directory is one too) and, with the
//! `s3` feature, `s3://bucket/prefix` (any S3-compatible storage).
//!
//! Files are streamed both ways, never held whole: [`FileStore::put_file`]
//! sends a local file in parts, [`FileStore::get_to_file`] writes a stored
//! file to a local spool file (the readers need a seekable file), under a
//! temporary name renamed when complete; [`FileStore::get_stream`] hands a
//! stored file on in chunks. A `file:///` store also tells where a key is on
//! disk ([`FileStore::local_path`]), so readers on the same machine open it
//! directly instead of spooling a copy.
//!
//! [`layout`] names what a deployment keeps (uploads, per-file outcomes,
//! job reports) and reads and writes the small ones.
//!
//! # Example
//!
//! ```no_run
//! use ledgerline_files::{FileStore, ObjectFiles};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let files = ObjectFiles::open("file:///srv/ledgerline")?;
//! files.put_file("uploads/abc", "local.csv".as_ref()).await?;
//! files.get_to_file("uploads/abc", "/tmp/spool.csv".as_ref()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod layout;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What can go wrong with a file store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The store's URL is not one this build serves.
    #[error("unsupported file store {0:?}: expected file:///absolute/dir or s3://bucket[/prefix]")]
    Unsupported(String),
    /// A key that is not a plain relative path.
    #[error("not a file key: {0:?}")]
    BadKey(String),
    /// The store failed.
    #[error("{key}: {source}")]
    Store {
        /// The key.
        key: String,
        /// What the store said.
        source: object_store::Error,
    },
    /// A kept object that does not parse.
    #[error("{key}: corrupt: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The local file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// Files by key (`uploads/<id>`, `jobs/<id>/report.json`), shared by every
/// process of a deployment.
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Where it is, as configured.
    fn url(&self) -> &str;

    /// Stores the local file `local` under `key`, streamed in parts;
    /// returns its size.
    async fn put_file(&self, key: &str, local: &Path) -> Result<u64, FilesError>;

    /// Stores `bytes` under `key` (small things: reports, outcomes).
    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), FilesError>;

    /// Writes the file at `key` to `local` (streamed; a temporary name
    /// renamed when complete); `Ok(None)` when there is none.
    async fn get_to_file(&self, key: &str, local: &Path) -> Result<Option<u64>, FilesError>;

    /// The file at `key` in memory, if it exists and is at most `limit`
    /// bytes (a larger one is an error, never read).
    async fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Bytes>, FilesError>;

    /// The file at `key` as a stream of chunks; `Ok(None)` when there is
    /// none.
    async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<BoxStream<'static, Result<Bytes, FilesError>>>, FilesError>;

    /// Removes `key`; `false` when there was nothing.
    async fn delete(&self, key: &str) -> Result<bool, FilesError>;

    /// Where `key` is on this machine's disk, for a store that is a local
    /// directory (`None` otherwise, or for a bad key): readers open it
    /// there instead of spooling a copy.
    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }

    /// Stores the local file `local` under `key` and removes `local`: a
    /// rename when both are on one file system, else a streamed copy.
    async fn put_moving(&self, key: &str, local: &Path) -> Result<u64, FilesError> {
        let size = self.put_file(key, local).await?;
        let _ = tokio::fs::remove_file(local).await;
        Ok(size)
    }
}

/// A [`FileStore`] over `object_store`.
#[derive(Clone, Debug)]
pub struct ObjectFiles {
    store: Arc<dyn ObjectStore>,
    url: String,
    /// The directory of a `file:///` store.
    root: Option<PathBuf>,
}

/// The part size of streamed uploads.
const PART: usize = 8 << 20;

impl ObjectFiles {
    /// Opens the store at `url`: `file:///absolute/dir` (created if
    /// missing) or, with the `s3` feature, `s3://bucket[/prefix]`,
    /// configured from the usual `AWS_*` variables (`AWS_ENDPOINT_URL` for
    /// an S3-compatible server, `AWS_ALLOW_HTTP=true` for one without TLS,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn open(url: &str) -> Result<ObjectFiles, FilesError> {
        ObjectFiles::open_with_options(url, &[])
    }

    /// [`ObjectFiles::open`] with object-store options set on top of the
    /// environment, by `object_store`'s names (`aws_endpoint`,
    /// `aws_allow_http`, `aws_access_key_id`, …); a `file:///` store takes
    /// none.
    pub fn open_with_options(
        url: &str,
        options: &[(&str, &str)],
    ) -> Result<ObjectFiles, FilesError> {
        if let Some(dir) = url.strip_prefix("file://").filter(|d| d.starts_with('/')) {
            return ObjectFiles::open_dir(Path::new(dir));
        }
        #[cfg(feature = "s3")]
        if let Some(rest) = url.strip_prefix("s3://") {
            return ObjectFiles::open_s3(url, rest, options);
        }
        let _ = options;
        Err(FilesError::Unsupported(url.to_string()))
    }

    /// Opens the directory `dir` as a store (created if missing).
    pub fn open_dir(dir: &Path) -> Result<ObjectFiles, FilesError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let root = std::fs::canonicalize(dir).map_err(io_err(dir))?;
        let store =
            LocalFileSystem::new_with_prefix(&root).map_err(|source| FilesError::Store {
                key: String::new(),
                source,
            })?;
        Ok(ObjectFiles {
            store: Arc::new(store),
            url: format!("file://{}", root.display()),
            root: Some(root),
        })
    }

    #[cfg(feature = "s3")]
    fn open_s3(url: &str, rest: &str, options: &[(&str, &str)]) -> Result<ObjectFiles, FilesError> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        use object_store::prefix::PrefixStore;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        if bucket.is_empty() || (!prefix.is_empty() && key_path(prefix).is_err()) {
            return Err(FilesError::Unsupported(url.to_string()));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        // The endpoint of an S3-compatible server (the AWS SDKs' name; the
        // builder reads only `AWS_ENDPOINT`).
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder.with_endpoint(endpoint);
        }
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key.parse().map_err(|source| FilesError::Store {
                key: (*key).to_string(),
                source,
            })?;
            builder = builder.with_config(key, *value);
        }
        let s3 = builder.build().map_err(|source| FilesError::Store {
            key: String::new(),
            source,
        })?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(ObjectFiles {
            store,
            url: url.to_string(),
            root: None,
        })
    }
}

/// A key as a store path: relative, no `.`/`..`/empty segments.
fn key_path(key: &str) -> Result<StorePath, FilesError> {
    let ok = !key.is_empty()
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
    if !ok {
        return Err(FilesError::BadKey(key.to_string()));
    }
    StorePath::parse(key).map_err(|_| FilesError::BadKey(key.to_string()))
}

fn store_err(key: &str) -> impl Fn(object_store::Error) -> FilesError + '_ {
    move |source| FilesError::Store {
        key: key.to_string(),
        source,
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[async_trait]
impl FileStore for ObjectFiles {
    fn url(&self) -> &str {
        &self.url
    }

    async fn put_file(&self, key: &str, local: &Path) -> Result<u64, FilesError> {
        let path = key_path(key)?;
        let mut file = tokio::fs::File::open(local).await.map_err(io_err(local))?;
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(store_err(key))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(io_err(local)(e));
                }
            };
            if n == 0 {
                break;
            }
            // Bounded memory: wait while two parts are in flight.
            writer.wait_for_capacity(2).await.map_err(store_err(key))?;
            writer.write(&buf[..n]);
            size += n as u64;
        }
        writer.finish().await.map_err(store_err(key))?;
        Ok(size)
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), FilesError> {
        let path = key_path(key)?;
        self.store
            .put(&path, bytes.into())
            .await
            .map(drop)
            .map_err(store_err(key))
    }

    async fn get_to_file(&self, key: &str, local: &Path) -> Result<Option<u64>, FilesError> {
        let path = key_path(key)?;
        let result = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(key)(e)),
        };
        let tmp = local.with_extension("part");
        let mut out = tokio::fs::File::create(&tmp).await.map_err(io_err(&tmp))?;
        let mut stream = result.into_stream();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(store_err(key)(e));
                }
            };
            size += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(io_err(&tmp))?;
        }
        out.flush().await.map_err(io_err(&tmp))?;
        drop(out);
        tokio::fs::rename(&tmp, local)
            .await
            .map_err(io_err(local))?;
        Ok(Some(size))
    }

    async fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Bytes>, FilesError> {
        let path = key_path(key)?;
        let meta = match self.store.head(&path).await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(key)(e)),
        };
        if meta.size > limit {
            return Err(FilesError::Io {
                path: PathBuf::from(key),
                source: std::io::Error::other(format!(
                    "{} bytes, over the limit of {limit}",
                    meta.size
                )),
            });
        }
        match self.store.get(&path).await {
            Ok(r) => r.bytes().await.map(Some).map_err(store_err(key)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(key)(e)),
        }
    }

    async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<BoxStream<'static, Result<Bytes, FilesError>>>, FilesError> {
        let path = key_path(key)?;
        let result = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(key)(e)),
        };
        let key = key.to_string();
        Ok(Some(
            result
                .into_stream()
                .map(move |chunk| {
                    chunk.map_err(|source| FilesError::Store {
                        key: key.clone(),
                        source,
                    })
                })
                .boxed(),
        ))
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        let root = self.root.as_ref()?;
        key_path(key).ok()?;
        Some(root.join(key))
    }

    async fn put_moving(&self, key: &str, local: &Path) -> Result<u64, FilesError> {
        if let Some(target) = self.local_path(key) {
            let size = tokio::fs::metadata(local)
                .await
                .map_err(io_err(local))?
                .len();
            if let Some(dir) = target.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(io_err(dir))?;
            }
            if tokio::fs::rename(local, &target).await.is_ok() {
                return Ok(size);
            }
        }
        let size = self.put_file(key, local).await?;
        let _ = tokio::fs::remove_file(local).await;
        Ok(size)
    }

    async fn delete(&self, key: &str) -> Result<bool, FilesError> {
        let path = key_path(key)?;
        match self.store.head(&path).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(store_err(key)(e)),
            Ok(_) => {}
        }
        self.store
            .delete(&path)
            .await
            .map(|()| true)
            .map_err(store_err(key))
    }
}
