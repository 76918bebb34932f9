//! The files of a run directory, opened without following symbolic links.
//!
//! A run directory may come from elsewhere (copied, unpacked, shared by another user), and what glov-cuda does
//! to its files (truncating an incomplete step, appending, locking) must stay inside it: a link named
//! `history.jsonl` must not make a resumed run cut or extend the file it points to. So each file is opened with
//! `O_NOFOLLOW` (a link, dangling or not, is refused by the kernel, and a dangling one's target is never created)
//! and must be a regular file; anything else is an error that names it. `O_NONBLOCK` keeps a FIFO planted under
//! such a name from blocking the open; it changes nothing for the regular files that pass the check.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a file type is, for errors.
fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn refuse(path: &Path, kind: std::fs::FileType) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is {}: the files of a run directory must be regular files (glov-cuda does not follow links there)",
        path.display(),
        describe(kind)
    )
}

/// Whether `path` holds a regular file (`false`: nothing there); a link or anything else is an error naming it.
pub fn exists(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(true),
        Ok(meta) => Err(refuse(path, meta.file_type())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot look at {}", path.display())),
    }
}

/// Opens `path` with `options`, never through a link, and only when it is a regular file; `None` when it does not
/// exist (and `options` do not create it).
pub fn open_existing(path: &Path, options: &OpenOptions) -> Result<Option<File>> {
    let mut options = options.clone();
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => match std::fs::symlink_metadata(path) {
            Ok(meta) => return Err(refuse(path, meta.file_type())),
            Err(_) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        },
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let kind = file.metadata().with_context(|| format!("cannot look at {}", path.display()))?.file_type();
    if !kind.is_file() {
        return Err(refuse(path, kind));
    }
    Ok(Some(file))
}

/// [`open_existing`], where a missing file is an error too.
pub fn open(path: &Path, options: &OpenOptions) -> Result<File> {
    match open_existing(path, options)? {
        Some(file) => Ok(file),
        None => bail!("cannot open {}: it does not exist", path.display()),
    }
}

/// The text of `path`, or `None` when it does not exist.
pub fn read_to_string(path: &Path) -> Result<Option<String>> {
    let Some(mut file) = open_existing(path, OpenOptions::new().read(true))? else { return Ok(None) };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_and_other_kinds_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"text").unwrap();
        symlink(&outside, dir.path().join("link")).unwrap();
        symlink(dir.path().join("nowhere"), dir.path().join("dangling")).unwrap();

        assert!(exists(&plain).unwrap());
        assert!(!exists(&dir.path().join("absent")).unwrap());
        assert_eq!(read_to_string(&plain).unwrap().as_deref(), Some("text"));
        assert_eq!(read_to_string(&dir.path().join("absent")).unwrap(), None);
        for name in ["link", "dangling"] {
            let path = dir.path().join(name);
            let e = exists(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("{} is a symbolic link", path.display())), "{e}");
            let e = open(&path, OpenOptions::new().append(true).create(true)).unwrap_err().to_string();
            assert!(e.contains(&format!("{} is a symbolic link", path.display())), "{e}");
            assert!(read_to_string(&path).unwrap_err().to_string().contains("symbolic link"));
        }
        assert!(!dir.path().join("nowhere").exists(), "a dangling link's target is never created");
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        let e = open(dir.path(), OpenOptions::new().read(true)).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        let e = open(&dir.path().join("absent"), OpenOptions::new().read(true)).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
