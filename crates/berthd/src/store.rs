//! The daemon's metadata database (`<data-root>/berth.redb`), shared with the image store.
//!
//! ```text
//! berth.redb
//! ├── containers      container id → ContainerRecord as JSON
//! ├── build_cache     cache key (sha256 hex of parent image, expanded instruction and source
//! │                   content) → CacheEntry JSON {image, used}
//! └── image_*         the image store's tables (see berth_image)
//! ```
//! Every change is one redb transaction, so a crash leaves the old or the new record.

use crate::error::{internal, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::sync::Arc;

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const BUILD_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("build_cache");

fn cache_err(e: impl std::fmt::Display) -> crate::error::ApiError {
    internal("build cache", e)
}

/// A build step's cached result.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CacheEntry {
    /// The image the step produced.
    pub image: String,
    /// Last use, unix seconds (for LRU eviction).
    pub used: i64,
}

/// Typed access to the daemon's own tables.
#[derive(Clone)]
pub struct Store {
    db: Arc<redb::Database>,
}

impl Store {
    pub fn open(db: Arc<redb::Database>) -> Result<Store> {
        let tx = db.begin_write().map_err(|e| internal("open metadata", e))?;
        tx.open_table(CONTAINERS)
            .map_err(|e| internal("open metadata", e))?;
        tx.open_table(BUILD_CACHE)
            .map_err(|e| internal("open metadata", e))?;
        tx.commit().map_err(|e| internal("open metadata", e))?;
        Ok(Store { db })
    }

    pub fn put_container(&self, id: &str, json: &[u8]) -> Result<()> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| internal("save container", e))?;
        {
            let mut t = tx
                .open_table(CONTAINERS)
                .map_err(|e| internal("save container", e))?;
            t.insert(id, json)
                .map_err(|e| internal("save container", e))?;
        }
        tx.commit().map_err(|e| internal("save container", e))
    }

    pub fn delete_container(&self, id: &str) -> Result<()> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| internal("delete container", e))?;
        {
            let mut t = tx
                .open_table(CONTAINERS)
                .map_err(|e| internal("delete container", e))?;
            t.remove(id).map_err(|e| internal("delete container", e))?;
        }
        tx.commit().map_err(|e| internal("delete container", e))
    }

    pub fn containers(&self) -> Result<Vec<Vec<u8>>> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| internal("read containers", e))?;
        let t = tx
            .open_table(CONTAINERS)
            .map_err(|e| internal("read containers", e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| internal("read containers", e))? {
            let (_, v) = row.map_err(|e| internal("read containers", e))?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// The cached result of a build step, if any.
    pub fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>> {
        let tx = self.db.begin_read().map_err(cache_err)?;
        let t = tx.open_table(BUILD_CACHE).map_err(cache_err)?;
        let v = t.get(key).map_err(cache_err)?;
        Ok(v.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    pub fn cache_put(&self, key: &str, e: &CacheEntry) -> Result<()> {
        let json = serde_json::to_vec(e).map_err(|e| internal("encode cache entry", e))?;
        let tx = self.db.begin_write().map_err(cache_err)?;
        {
            let mut t = tx.open_table(BUILD_CACHE).map_err(cache_err)?;
            t.insert(key, json.as_slice()).map_err(cache_err)?;
        }
        tx.commit().map_err(cache_err)
    }

    /// Every cache entry, with its key.
    pub fn cache_all(&self) -> Result<Vec<(String, CacheEntry)>> {
        let tx = self.db.begin_read().map_err(cache_err)?;
        let t = tx.open_table(BUILD_CACHE).map_err(cache_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(cache_err)? {
            let (k, v) = row.map_err(cache_err)?;
            if let Ok(e) = serde_json::from_slice(v.value()) {
                out.push((k.value().to_string(), e));
            }
        }
        Ok(out)
    }

    pub fn cache_remove(&self, keys: &[String]) -> Result<()> {
        let tx = self.db.begin_write().map_err(cache_err)?;
        {
            let mut t = tx.open_table(BUILD_CACHE).map_err(cache_err)?;
            for k in keys {
                t.remove(k.as_str()).map_err(cache_err)?;
            }
        }
        tx.commit().map_err(cache_err)
    }
}
