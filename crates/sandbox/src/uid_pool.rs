//! The pool of unprivileged host uids. Run as root, bubblewrap would map the sandbox user to host
//! root; each sandbox instead runs as its own pooled uid, so two sandboxes never share an owner
//! and none is root on the host.

use std::collections::BTreeSet;

use crate::config::UidRange;

/// Which uids of the range are leased. A uid goes back only after its sandbox's cgroup was seen
/// empty, so no process of an old sandbox can ever act as a new one.
#[derive(Debug)]
pub struct UidPool {
    range: UidRange,
    leased: BTreeSet<u32>,
    next: u32,
}

impl UidPool {
    /// An empty pool over `range`.
    pub fn new(range: UidRange) -> Self {
        UidPool {
            range,
            leased: BTreeSet::new(),
            next: 0,
        }
    }

    /// Leases a free uid, or `None` when every uid is in use. Leases rotate through the range
    /// instead of reusing the lowest free uid, so a just-released uid is the last to come back.
    pub fn lease(&mut self) -> Option<u32> {
        for step in 0..self.range.count {
            let offset = (self.next + step) % self.range.count;
            let uid = self.range.first + offset;
            if self.leased.insert(uid) {
                self.next = (offset + 1) % self.range.count;
                return Some(uid);
            }
        }
        None
    }

    /// Returns `uid` to the pool; call only once nothing runs as it any more.
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
}
