//! The pool of unprivileged host uids. Run as root, bubblewrap would map the sandbox user to host
//! root; each sandbox instead runs as its own pooled uid, so two sandboxes never share an owner
//! and none is root on the host.
//!
//! Each lease also holds an exclusive `flock` on `LEASE_DIR/{uid}`, so gateways sharing a host
//! (two instances, or the test suites running side by side) never hand out the same uid either;
//! a crashed gateway's locks go with its process.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::config::UidRange;

/// Which uids of the range are leased. A uid goes back only after its sandbox's cgroup was seen
/// empty, so no process of an old sandbox can ever act as a new one.
#[derive(Debug)]
pub struct UidPool {
    range: UidRange,
    /// Leased uids, with the host-wide lock when there is one.
    leased: BTreeMap<u32, Option<OwnedFd>>,
    next: u32,
    lock_dir: Option<&'static Path>,
}

/// Where host-wide uid lease locks live (root only).
pub const LEASE_DIR: &str = "/run/mcp-hero-uid-leases";

impl UidPool {
    /// An empty pool over `range`.
    pub fn new(range: UidRange) -> Self {
        UidPool {
            range,
            leased: BTreeMap::new(),
            next: 0,
            lock_dir: None,
        }
    }

    /// A pool whose leases also lock `LEASE_DIR/{uid}` host-wide (run as root).
    pub fn host_wide(range: UidRange) -> Result<Self, std::io::Error> {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        let dir = Path::new(LEASE_DIR);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let mut pool = UidPool::new(range);
        pool.lock_dir = Some(dir);
        Ok(pool)
    }

    /// Takes the host-wide lock of `uid`, or `None` when another gateway holds it.
    fn lock(&self, uid: u32) -> Option<Option<OwnedFd>> {
        let Some(dir) = self.lock_dir else {
            return Some(None);
        };
        use rustix::fs::{FlockOperation, Mode, OFlags};
        let fd = rustix::fs::open(
            dir.join(uid.to_string()),
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .ok()?;
        rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
        Some(Some(fd))
    }

    /// Leases a free uid, or `None` when every uid is in use. Leases rotate through the range
    /// instead of reusing the lowest free uid, so a just-released uid is the last to come back.
    pub fn lease(&mut self) -> Option<u32> {
        for step in 0..self.range.count {
            let offset = (self.next + step) % self.range.count;
            let uid = self.range.first + offset;
            if self.leased.contains_key(&uid) {
                continue;
            }
            if let Some(lock) = self.lock(uid) {
                self.leased.insert(uid, lock);
                self.next = (offset + 1) % self.range.count;
                return Some(uid);
            }
        }
        None
    }

    /// Returns `uid` to the pool (and its host-wide lock); call only once nothing runs as it
    /// any more.
    pub fn release(&mut self, uid: u32) {
        self.leased.remove(&uid);
    }

    /// How many uids are leased now.
    pub fn leased(&self) -> usize {
        self.leased.len()
    }

    /// Whether `uid` belongs to the pool's range, for the start-up sweep.
    pub fn contains(&self, uid: u32) -> bool {
        uid >= self.range.first && uid - self.range.first < self.range.count
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_unique_rotate_and_run_out() {
        let mut pool = UidPool::new(UidRange {
            first: 5000,
            count: 3,
        });
        assert_eq!(pool.lease(), Some(5000));
        assert_eq!(pool.lease(), Some(5001));
        pool.release(5000);
        assert_eq!(pool.lease(), Some(5002));
        assert_eq!(pool.lease(), Some(5000), "a released uid comes back last");
        assert_eq!(pool.lease(), None, "all three are leased");
        assert_eq!(pool.leased(), 3);
        assert!(pool.contains(5002) && !pool.contains(5003) && !pool.contains(4999));
    }

    /// Two pools on one host (two gateways) never lease the same uid.
    #[test]
    fn host_wide_leases_exclude_each_other() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let range = UidRange {
            first: 3_900_000 + std::process::id() % 1000 * 2,
            count: 2,
        };
        let mut first = UidPool::host_wide(range).unwrap();
        let mut second = UidPool::host_wide(range).unwrap();
        let a = first.lease().unwrap();
        let b = second.lease().unwrap();
        assert_ne!(a, b);
        assert_eq!(second.lease(), None, "the other uid is the first pool's");
        first.release(a);
        assert_eq!(second.lease(), Some(a));
    }
}
