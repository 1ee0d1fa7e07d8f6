//! The daemon's metadata database (`<data-root>/berth.redb`), shared with the image store.
//!
//! ```text
//! berth.redb
//! ├── containers      container id → ContainerRecord as JSON
//! └── image_*         the image store's tables (see berth_image)
//! ```
//! Every change is one redb transaction, so a crash leaves the old or the new record.

use crate::error::{internal, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::sync::Arc;

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

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
}
