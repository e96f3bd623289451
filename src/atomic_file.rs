//! Files replaced whole: written to a temporary file beside the target (created owner-only),
//! synced, then renamed over it, so a reader never sees half a file. A target that is not a
//! regular file (`/dev/null`, a FIFO), or one reached through `/proc` (`/dev/stdout`), is
//! written through instead, and a symlink is followed: the file it points to is replaced, not
//! the link.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// How `path` is written.
enum Target {
    /// Renaming over a device or a pipe would replace it with a plain file; a stream such as
    /// `/dev/stdout` is appended to, after what the process already wrote there.
    WriteThrough,
    /// This file (where `path`'s symlinks lead) is replaced.
    Replace(PathBuf),
}

fn target(path: &Path) -> std::io::Result<Target> {
    let (destination, via_system) = follow(path);
    if via_system {
        return Ok(Target::WriteThrough);
    }
    match std::fs::metadata(&destination) {
        Ok(meta) if meta.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )),
        Ok(meta) if !meta.is_file() => Ok(Target::WriteThrough),
        _ => Ok(Target::Replace(destination)),
    }
}

/// Where a write to `path` lands: its symlinks followed (a dangling one to the file it would
/// create), its directory canonical when it exists. Two paths that name one file give one
/// destination.
pub fn destination(path: &Path) -> PathBuf {
    let (file, _) = follow(path);
    let name = file.file_name().map(ToOwned::to_owned);
    match (std::fs::canonicalize(directory_of(&file)), name) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(&file).unwrap_or(file),
    }
}

/// `path` with its symlinks followed, and whether the way passed through `/proc`:
/// `/dev/stdout` leads to `/proc/self/fd/1`, which leads to whatever stdout is, and even a
/// regular file there is a stream this process writes to, not a file to replace. (A file in
/// `/dev/shm` is a file like any other.)
fn follow(path: &Path) -> (PathBuf, bool) {
    /// As the kernel's own limit on nested links.
    const MAX_LINKS: usize = 40;
    let system = |p: &Path| p.starts_with("/proc");
    let mut current = path.to_owned();
    let mut via_system = system(&current);
    for _ in 0..MAX_LINKS {
        if !current.is_symlink() {
            break;
        }
        match link_target(&current) {
            Ok(next) => current = next,
            Err(_) => break,
        }
        via_system |= system(&current);
    }
    (current, via_system)
}

/// Writes `contents` to `path`, creating its directory.
pub fn write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    match target(path)? {
        Target::WriteThrough => std::fs::OpenOptions::new()
            .append(true)
            .open(path)?
            .write_all(contents),
        Target::Replace(file) => replace(&file, contents),
    }
}

/// Finds what would keep [`write`] from writing `path`, without writing it: its directory is
/// created, and a temporary file is made in it and removed.
pub fn check(path: &Path) -> std::io::Result<()> {
    match target(path)? {
        Target::WriteThrough => Ok(()),
        Target::Replace(file) => {
            tempfile::NamedTempFile::new_in(create_parent(&file)?)?;
            Ok(())
        }
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates the directory `path` is in, and returns it.
pub fn create_parent(path: &Path) -> std::io::Result<&Path> {
    let dir = directory_of(path);
    std::fs::create_dir_all(dir)?;
    Ok(dir)
}

fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temp = tempfile::NamedTempFile::new_in(create_parent(path)?)?;
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
        let (read, received) = std::sync::mpsc::channel();
        {
            let fifo = fifo.clone();
            std::thread::spawn(move || read.send(std::fs::read(fifo).unwrap()));
        }
        write(&fifo, b"through the pipe").unwrap();
        // A write that replaced the pipe would leave the reader waiting for a writer forever.
        let got = received.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got.expect("the reader got the bytes"), b"through the pipe");
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the pipe is still a pipe");
    }

    #[cfg(unix)]
    #[test]
    fn one_file_named_two_ways_has_one_destination() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let file = dir.path().join("j.jsonl");
        std::os::unix::fs::symlink("j.jsonl", dir.path().join("link")).unwrap();
        let by_dots = dir.path().join("sub/../j.jsonl");
        assert_eq!(destination(&by_dots), destination(&file));
        assert_eq!(destination(&dir.path().join("link")), destination(&file));
        assert_ne!(destination(&dir.path().join("other")), destination(&file));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_stream_of_this_process_is_told_from_a_file_that_happens_to_live_under_dev() {
        assert!(
            follow(Path::new("/dev/stdout")).1,
            "/dev/stdout goes through /proc"
        );
        assert!(follow(Path::new("/proc/self/fd/1")).1);
        assert!(!follow(Path::new("/dev/shm/flotilla-no-such-report.json")).1);
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(dir.path(), b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
        assert_eq!(
            check(dir.path()).unwrap_err().kind(),
            std::io::ErrorKind::IsADirectory
        );
    }

    #[test]
    fn check_creates_the_directory_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/report.json");
        check(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            0
        );
    }

    #[cfg(unix)]
    #[test]
    fn check_finds_a_directory_that_cannot_be_made() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"").unwrap();
        assert!(
            check(&file.join("report.json")).is_err(),
            "a file is in the way"
        );
    }
}
