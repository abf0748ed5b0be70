//! Which modules each of a script's marker probes runs in (decided by
//! `tool::stap::bind` from the binaries the probes name).

/// Which modules each probe runs in.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    /// Per probe: `None` for every module of the run, or the files
    /// (`st_dev`, inode) it is bound to.
    pub probes: Vec<Option<Vec<(u64, u64)>>>,
}

impl Bindings {
    /// Whether probe `p` runs in module `(dev, inode)`.
    pub fn binds(&self, p: usize, dev: u64, inode: u64) -> bool {
        match self.probes.get(p) {
            Some(Some(files)) => files.contains(&(dev, inode)),
            _ => true,
        }
    }
}
