//! Output directories that appear complete or not at all: everything is written into a hidden staging
//! sibling, renamed into place by `commit`, and removed if the value is dropped uncommitted.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    overwrite: bool,
    committed: bool,
}

impl StagedDir {
    /// Prepares `target`. Fails if it exists, unless `overwrite` (then it is replaced on commit).
    pub fn create(target: &Path, overwrite: bool) -> Result<Self> {
        if target.exists() && !overwrite {
            return Err(DataError::Invalid(format!(
                "{} already exists; choose another output directory or pass --overwrite",
                target.display()
            )));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, e))?;
        let name = target.file_name().ok_or_else(|| {
            DataError::Invalid(format!("{} is not a directory name", target.display()))
        })?;
        let staging = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
        Ok(StagedDir {
            target: target.to_path_buf(),
            staging,
            overwrite,
            committed: false,
        })
    }

    /// The directory to write into now.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final directory.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the staged directory into place.
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() && self.overwrite {
            std::fs::remove_dir_all(&self.target).map_err(|e| DataError::io(&self.target, e))?;
        }
        std::fs::rename(&self.staging, &self.target).map_err(|e| DataError::io(&self.target, e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_stage_leaves_nothing_and_commit_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        {
            let s = StagedDir::create(&target, false).unwrap();
            std::fs::write(s.path().join("a"), b"x").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let s = StagedDir::create(&target, false).unwrap();
        std::fs::write(s.path().join("a"), b"1").unwrap();
        s.commit().unwrap();
        assert!(StagedDir::create(&target, false).is_err());
        let s = StagedDir::create(&target, true).unwrap();
        std::fs::write(s.path().join("b"), b"2").unwrap();
        s.commit().unwrap();
        assert!(!target.join("a").exists() && target.join("b").exists());
    }
}
