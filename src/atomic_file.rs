//! Files replaced whole: written to a temporary file beside the target (created owner-only),
//! synced, then renamed over it, so a reader never sees half a file. A target that is not a
//! regular file (`/dev/stdout`, `/dev/null`, a FIFO) is written through instead, and a symlink
//! is followed: the file it points to is replaced, not the link.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `contents` to `path`, creating its directory.
pub fn write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )),
        // Renaming over a device or a pipe would replace it with a plain file.
        Ok(meta) if !meta.is_file() => std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(contents),
        Ok(_) => replace(&std::fs::canonicalize(path)?, contents),
        // A link to nothing yet: create what it points to.
        Err(_) if path.is_symlink() => replace(&link_target(path)?, contents),
        Err(_) => replace(path, contents),
    }
}

fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(contents)?;
    temp.as_file().sync_data()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Where a symlink points, relative targets taken from the link's own directory.
fn link_target(link: &Path) -> std::io::Result<PathBuf> {
    let target = std::fs::read_link(link)?;
    Ok(match link.parent() {
        Some(dir) if target.is_relative() => dir.join(target),
        _ => target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_file_is_replaced_whole_and_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.json");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let entries = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(entries, 1, "no temporary file left behind");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_stays_a_link_and_the_file_it_points_to_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("reports/report.json");
        let link = dir.path().join("latest.json");
        std::os::unix::fs::symlink("reports/report.json", &link).unwrap();
        // Dangling at first: the target is created.
        write(&link, b"first").unwrap();
        write(&link, b"second").unwrap();
        assert!(link.is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_is_written_through_not_replaced() {
        use std::os::unix::fs::FileTypeExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("report.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mkfifo unavailable: skipped");
            return;
        }
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write(&fifo, b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the pipe is still a pipe");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(dir.path(), b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
    }
}
