//! Reading the files the registry trusts an operator to have written (tenant files, `${file:}`
//! secrets) without trusting them to be well-behaved: only regular files (a FIFO would block the
//! read forever, `/dev/zero` would never end), opened non-blocking (in case one is swapped for
//! a FIFO between the check and the open), and never more than a limit. Every way a file cannot
//! be read is an error that says what it is (a dangling symlink, a symlink loop, a directory),
//! never a silent skip.

use std::{
    fs,
    io::{self, Read},
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// A tenant file holds at most this many bytes (a real one is a few KiB).
pub const MAX_TENANT_FILE_BYTES: u64 = 1024 * 1024;
/// A `${file:}` secret holds at most this many bytes (keys and passwords are short).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing is at the path (a deleted file; a removed tenant).
    Gone,
    /// Something is there, and it cannot be read: why, for a diagnostic.
    Unreadable(String),
}

/// The bytes of the regular file at `path` (symlinks followed), if it holds at most `max`.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let link = fs::symlink_metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Gone,
        _ => ReadError::Unreadable(format!("cannot be read: {}", reason(&e))),
    })?;
    let meta = if link.file_type().is_symlink() {
        fs::metadata(path).map_err(|e| {
            ReadError::Unreadable(match (e.kind(), e.raw_os_error()) {
                (io::ErrorKind::NotFound, _) => "is a symlink to nothing (its target does not exist)".to_owned(),
                (_, Some(libc::ELOOP)) => "is a symlink loop".to_owned(),
                _ => format!("is a symlink that cannot be followed: {}", reason(&e)),
            })
        })?
    } else {
        link
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(ReadError::Unreadable(format!("is {what}: only regular files are read")));
    }
    let too_big = |size: u64| ReadError::Unreadable(format!("is {size} bytes; at most {} are read", shown(max)));
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| ReadError::Unreadable(format!("cannot be read: {}", reason(&e))))?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // A file that grew since the check is cut at the limit plus one byte, and refused.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Unreadable(format!("cannot be read: {}", reason(&e))))?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

fn shown(bytes: u64) -> String {
    if bytes >= 1024 * 1024 { format!("{} MiB", bytes / (1024 * 1024)) } else { format!("{} KiB", bytes / 1024) }
}

/// An I/O error in words, without the OS's error numbers.
pub fn reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::InvalidData => "not UTF-8 text".into(),
        _ => err.kind().to_string(),
    }
}

/// Another tenant file in the same directory with the same name but the other extension.
pub fn twin_file(path: &Path) -> Option<PathBuf> {
    let other_ext = match path.extension()?.to_str()? {
        "yaml" => "yml",
        _ => "yaml",
    };
    let twin = path.with_extension(other_ext);
    twin.is_file().then_some(twin)
}

/// The tenant-file paths of `dir`, sorted: every `*.yaml` / `*.yml` entry that is not hidden,
/// whatever it is (a FIFO or a dangling symlink is reported when read, never skipped).
pub fn tenant_paths(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if is_tenant_file(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// `*.yaml` and `*.yml`, not hidden (editors' swap files, Kubernetes' `..data`).
pub fn is_tenant_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    !hidden && path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreadable(r: Result<Vec<u8>, ReadError>) -> String {
        match r {
            Err(ReadError::Unreadable(why)) => why,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_regular_file_within_the_limit_is_read_and_a_bigger_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, "x".repeat(1024)).unwrap();
        assert_eq!(read_regular(&path, 1024).unwrap().len(), 1024);
        assert_eq!(unreadable(read_regular(&path, 1023)), "is 1024 bytes; at most 0 KiB are read");
        assert_eq!(read_regular(&dir.path().join("missing.yaml"), 10), Err(ReadError::Gone));
    }

    #[test]
    fn fifos_devices_directories_and_broken_symlinks_are_named_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(unreadable(read_regular(&fifo, 1024)).contains("a FIFO"));
        assert!(unreadable(read_regular(Path::new("/dev/zero"), 1024)).contains("a device"));
        assert!(unreadable(read_regular(dir.path(), 1024)).contains("a directory"));
        let dangling = dir.path().join("dangling.yaml");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(unreadable(read_regular(&dangling, 1024)).contains("symlink to nothing"));
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(unreadable(read_regular(&a, 1024)).contains("symlink loop"));
    }

    #[test]
    fn a_symlink_to_a_regular_file_is_followed() {
        // Kubernetes mounts secrets and config maps as symlinks into `..data`.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), "s3cret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert_eq!(read_regular(&dir.path().join("link"), 64).unwrap(), b"s3cret");
    }
}
