//! The build context: the request's tar (plain or gzip) unpacked into a private directory,
//! refusing entries that would land outside it.

use crate::error::{ApiError, Result};
use std::io::Read;
use std::path::{Component, Path};

/// Unpacks the context tar at `tar_path` into `dest` (which must exist and be empty).
pub fn unpack(tar_path: &Path, dest: &Path) -> Result<()> {
    let f = std::fs::File::open(tar_path)
        .map_err(|e| crate::error::internal("open build context", e))?;
    let r = berth_image::decompressed(Box::new(f) as Box<dyn Read>)
        .map_err(|e| ApiError::invalid(format!("invalid build context: {e}")))?;
    let mut a = tar::Archive::new(r);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_unpack_xattrs(false);
    let entries = a
        .entries()
        .map_err(|e| ApiError::invalid(format!("invalid build context: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| ApiError::invalid(format!("invalid build context: {e}")))?;
        let path = e
            .path()
            .map_err(|e| ApiError::invalid(format!("invalid build context: {e}")))?
            .into_owned();
        if !safe_relative(&path) {
            return Err(ApiError::invalid(format!(
                "invalid build context: entry {} is outside the context",
                path.display()
            )));
        }
        // unpack_in also refuses to write through symlinks that leave `dest`.
        let ok = e.unpack_in(dest).map_err(|err| {
            ApiError::invalid(format!("invalid build context: {}: {err}", path.display()))
        })?;
        if !ok {
            return Err(ApiError::invalid(format!(
                "invalid build context: entry {} is outside the context",
                path.display()
            )));
        }
    }
    Ok(())
}

/// A relative path with no `..` (leading `/` and `.` are tolerated, as tar writers emit them).
pub fn safe_relative(p: &Path) -> bool {
    p.components().all(|c| {
        matches!(
            c,
            Component::Normal(_) | Component::CurDir | Component::RootDir
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(safe_relative(Path::new("./a/b")));
        assert!(!safe_relative(Path::new("a/../../b")));
    }
}
