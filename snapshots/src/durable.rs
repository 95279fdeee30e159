//! Directories whose names survive a power cut. POSIX makes a new name
//! durable only when its directory is fsynced: a directory made with
//! `create_dir_all` and never synced in its parent can vanish with
//! everything in it, synced or not (the power-loss tests' disk,
//! `ingressoja-powerloss`, forgets such names as a real disk may).

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// Fsyncs directory `dir`: the names made, renamed or removed in it so far
/// survive a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Copies file `from` to `to` and fsyncs the copy's data (its name is
/// durable once its directory is synced: [`sync_dir`] after the last copy).
pub fn copy_durably(from: &Path, to: &Path) -> io::Result<u64> {
    let copied = fs::copy(from, to)?;
    File::open(to)?.sync_all()?;
    Ok(copied)
}

/// Creates `dir` and its missing parents, each made durable in its parent.
/// Does nothing to a directory that exists.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(path);
        at = path.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    // Top down: a parent's own name before the names in it.
    for made in missing.iter().rev() {
        sync_dir(made.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn creates_missing_parents_and_leaves_an_existing_directory_alone() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        std::fs::write(deep.join("f"), b"x").unwrap();
        create_dir_durably(&deep).unwrap();
        assert!(deep.join("f").exists());
        assert!(
            create_dir_durably(&deep.join("f/g")).is_err(),
            "a file is in the way"
        );
    }
}
