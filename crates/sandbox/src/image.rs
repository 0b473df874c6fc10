//! Security decision: install images (S2). A server's package is installed once, by a sandbox
//! that sees its image directory read-write ([`crate::ImageMount::Install`]) and runs as a pooled
//! uid. Once that sandbox is gone, [`seal`] hands every file to root and drops every write bit,
//! so no later sandbox (each session mounts the image read-only anyway) nor a pooled uid that is
//! leased again can change what sessions run.
//!
//! Assumptions: nothing else writes beneath the image while it is sealed or removed (its install
//! sandbox has ended and its parents are private to the gateway), so walking it by path, never
//! following a symbolic link, sees a stable tree. Hard links cannot point outside the image: a
//! link across mounts fails with `EXDEV`, and the image is a mount of its own inside the sandbox.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::SandboxError;

/// What a sealed image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sealed {
    /// Bytes in regular files.
    pub bytes: u64,
    /// Regular files.
    pub files: u64,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Io { what, source }
}

/// Makes the tree at `root` read-only and, run as root, owned by root: directories 0555,
/// executables 0555, other files 0444, symbolic links left pointing where they point, anything
/// else (a FIFO, a socket) removed. Call it only after the install's sandbox was torn down.
pub fn seal(root: &Path) -> Result<Sealed, SandboxError> {
    let as_root = rustix::process::geteuid().is_root();
    let mut sealed = Sealed::default();
    let mut pending: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta =
            std::fs::symlink_metadata(&path).map_err(io(format!("reading {}", path.display())))?;
        let kind = meta.file_type();
        if as_root && !(meta.uid() == 0 && meta.gid() == 0) {
            std::os::unix::fs::lchown(&path, Some(0), Some(0))
                .map_err(io(format!("handing {} to root", path.display())))?;
        }
        let mode = if kind.is_dir() {
            for entry in
                std::fs::read_dir(&path).map_err(io(format!("listing {}", path.display())))?
            {
                pending.push(
                    entry
                        .map_err(io(format!("listing {}", path.display())))?
                        .path(),
                );
            }
            0o555
        } else if kind.is_file() {
            sealed.files += 1;
            sealed.bytes += meta.len();
            if meta.mode() & 0o111 != 0 {
                0o555
            } else {
                0o444
            }
        } else if kind.is_symlink() {
            continue;
        } else {
            std::fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
            continue;
        };
        // `path` was just seen to be a directory or a regular file, not a link, and nothing
        // else changes the tree, so this cannot follow a link out of the image.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("setting the mode of {}", path.display())))?;
    }
    Ok(sealed)
}

/// Removes an image, sealed or half-written; a missing one is not an error. Directories get
/// their owner's write bit back first, which a gateway that is not root needs to empty them.
pub fn remove(root: &Path) -> Result<(), SandboxError> {
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(io(format!("reading {}", path.display()))(error)),
        };
        if meta.is_dir() {
            if meta.mode() & 0o700 != 0o700 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                    .map_err(io(format!("setting the mode of {}", path.display())))?;
            }
            for entry in
                std::fs::read_dir(&path).map_err(io(format!("listing {}", path.display())))?
            {
                pending.push(
                    entry
                        .map_err(io(format!("listing {}", path.display())))?
                        .path(),
                );
            }
        }
    }
    match std::fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io(format!("removing {}", root.display()))(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_drops_every_write_bit_and_keeps_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("image");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/server"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join("bin/server"),
            std::fs::Permissions::from_mode(0o4777),
        )
        .unwrap();
        std::fs::write(root.join("data.json"), b"{}").unwrap();
        std::os::unix::fs::symlink("bin/server", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("outside")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        )
        .unwrap();
        let before = std::fs::metadata("/etc/hostname").map(|m| m.mode());

        let sealed = seal(&root).unwrap();
        assert_eq!(
            sealed,
            Sealed {
                bytes: 12,
                files: 2
            }
        );
        let mode = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode(""), 0o555);
        assert_eq!(mode("bin"), 0o555);
        assert_eq!(mode("bin/server"), 0o555, "setuid and write bits are gone");
        assert_eq!(mode("data.json"), 0o444);
        assert!(
            std::fs::symlink_metadata(root.join("link"))
                .unwrap()
                .is_symlink()
        );
        assert!(
            !root.join("fifo").exists(),
            "only files, directories and links stay"
        );
        assert_eq!(
            std::fs::metadata("/etc/hostname").map(|m| m.mode()).ok(),
            before.ok(),
            "a link out of the image is not followed"
        );

        remove(&root).unwrap();
        assert!(!root.exists());
        remove(&root).unwrap();
    }
}
