//! The build cache: a step's result keyed by its parent image, its instruction after expansion
//! and (for COPY/ADD) the content and mode of its sources, never mtimes. Entries point at
//! images; the cache is bounded by the bytes of the layers its entries added (LRU eviction)
//! and `builder prune` clears it.

use super::super::{blocking, Daemon};
use crate::error::{image_err, Result};
use crate::store::CacheEntry;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

/// Default bound on the bytes of cached layers.
pub const DEFAULT_CAP: u64 = 10 << 30;

/// The cache key of a step.
pub fn key(parent: &str, instruction: &str, extra: &str) -> String {
    let mut h = Sha256::new();
    for part in [parent, instruction, extra] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Daemon {
    /// The image cached for `key`, if it still exists; marks the entry used.
    pub async fn cache_lookup(self: &Arc<Self>, key: &str) -> Result<Option<String>> {
        let Some(mut e) = self.store.cache_get(key)? else {
            return Ok(None);
        };
        let images = self.images.clone();
        let id = e.image.clone();
        let exists = blocking(move || {
            Ok(images
                .complete_image(&id.parse().map_err(image_err)?)
                .map_err(image_err)?
                .is_some())
        })
        .await?;
        if !exists {
            self.store.cache_remove(&[key.to_string()])?;
            return Ok(None);
        }
        e.used = now();
        self.store.cache_put(key, &e)?;
        Ok(Some(e.image))
    }

    pub fn cache_store(&self, key: &str, image: &str) -> Result<()> {
        self.store.cache_put(
            key,
            &CacheEntry {
                image: image.to_string(),
                used: now(),
            },
        )
    }

    /// Evicts least recently used entries until the layers they added fit in `cap` bytes, or
    /// all of them with `cap == 0` (`builder prune`). Images no tag or container uses are
    /// deleted with their entries. Returns the bytes reclaimed.
    pub async fn cache_trim(self: &Arc<Self>, cap: u64) -> Result<u64> {
        let mut entries = self.store.cache_all()?;
        entries.sort_by_key(|(_, e)| e.used);
        let images = self.images.clone();
        let sizes: Vec<u64> = {
            let ids: Vec<String> = entries.iter().map(|(_, e)| e.image.clone()).collect();
            blocking(move || {
                Ok(ids
                    .iter()
                    .map(|id| {
                        id.parse()
                            .ok()
                            .and_then(|d| images.get(&d).ok())
                            .and_then(|r| r.layer_sizes.last().copied())
                            .unwrap_or(0)
                    })
                    .collect())
            })
            .await?
        };
        let mut total: u64 = sizes.iter().sum();
        let mut evict = Vec::new();
        for ((k, e), size) in entries.iter().zip(sizes) {
            if total <= cap && cap != 0 {
                break;
            }
            evict.push((k.clone(), e.image.clone()));
            total = total.saturating_sub(size);
        }
        if evict.is_empty() {
            return Ok(0);
        }
        self.store
            .cache_remove(&evict.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())?;
        let still_cached: std::collections::HashSet<String> = self
            .store
            .cache_all()?
            .into_iter()
            .map(|(_, e)| e.image)
            .collect();
        let mut reclaimed = 0;
        // Newest first, so children go before the parents they were built on.
        for (_, id) in evict.into_iter().rev() {
            let images = self.images.clone();
            let in_use = self.image_user(&id).is_some();
            if in_use || still_cached.contains(&id) {
                continue;
            }
            let freed = blocking(move || {
                let Ok(rec) = images.resolve(&id) else {
                    return Ok(0);
                };
                if !rec.repo_tags.is_empty() {
                    return Ok(0);
                }
                let size = rec.layer_sizes.last().copied().unwrap_or(0);
                match images.delete(&id, false, &|_| None) {
                    Ok(_) => Ok(size),
                    Err(_) => Ok(0),
                }
            })
            .await?;
            reclaimed += freed;
        }
        Ok(reclaimed)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_differ_by_every_part() {
        let k = super::key("p", "RUN x", "");
        assert_eq!(k.len(), 64);
        assert_ne!(k, super::key("q", "RUN x", ""));
        assert_ne!(k, super::key("p", "RUN y", ""));
        assert_ne!(k, super::key("p", "RUN x", "c"));
        assert_ne!(super::key("ab", "c", ""), super::key("a", "bc", ""));
    }
}
