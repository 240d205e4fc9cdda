//! Power cuts: what of the simulated disk survives, decided by a seeded generator.

use kuberaft_raft::rng::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Inode, LastWrite, Shared, SimFs, State};

/// How a crash treats what was not yet durable. The default drops all of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashOptions {
    /// Seeds every random choice the crash makes, so a failure can be replayed.
    pub seed: u64,
    /// Keep a random-length prefix of the last unsynced write (a torn write).
    pub torn_last_write: bool,
    /// The torn part may end in up to 16 bytes of garbage.
    pub garbage: bool,
    /// A random prefix of the unsynced creates, renames and removes survives.
    pub keep_unsynced_metadata: bool,
}

/// The disk as it was right after some mutating operation; [`CrashImage::boot`] turns
/// it into the disk a machine would find after losing power at that moment.
#[derive(Clone, Debug)]
pub struct CrashImage {
    pub(super) state: State,
}

impl CrashImage {
    /// The disk found after power returns.
    pub fn boot(&self, opts: CrashOptions) -> SimFs {
        let shared = Shared {
            state: self.crashed_state(opts),
            ..Shared::default()
        };
        SimFs {
            shared: Arc::new(Mutex::new(shared)),
        }
    }

    /// The disk seen by a restarted process after a kill -9: the page cache survives,
    /// nothing more became durable, and the old process's handles are dead.
    pub fn boot_after_kill(&self) -> SimFs {
        let mut state = self.state.clone();
        state.generation += 1;
        SimFs {
            shared: Arc::new(Mutex::new(Shared {
                state,
                ..Shared::default()
            })),
        }
    }

    pub(super) fn crashed_state(&self, opts: CrashOptions) -> State {
        let old = &self.state;
        let mut rng = Rng::new(opts.seed);
        let mut names = old.durable_names.clone();
        if opts.keep_unsynced_metadata {
            let kept = rng.range(0, old.pending_ns.len() as u64 + 1) as usize;
            old.pending_ns[..kept]
                .iter()
                .for_each(|op| op.apply(&mut names));
        }
        let mut inodes = BTreeMap::new();
        for &ino in names.values() {
            let durable = old.inodes[&ino].durable.clone();
            inodes.insert(
                ino,
                Inode {
                    data: durable.clone(),
                    durable,
                },
            );
        }
        // A write past the durable end would leave a hole; such a write can only follow
        // other unsynced writes, which this model drops, so it is dropped too.
        if opts.torn_last_write
            && let Some(w) = &old.last_write
            && let Some(inode) = inodes.get_mut(&w.ino)
            && w.offset as usize <= inode.data.len()
        {
            tear(inode, w, opts.garbage, &mut rng);
        }
        State {
            generation: old.generation + 1,
            next_ino: old.next_ino,
            inodes,
            durable_names: names.clone(),
            names,
            pending_ns: Vec::new(),
            last_write: None,
            stats: old.stats,
        }
    }
}

/// Keeps a random-length prefix of `w` on disk, maybe ending in garbage.
fn tear(inode: &mut Inode, w: &LastWrite, garbage: bool, rng: &mut Rng) {
    let offset = w.offset as usize;
    let cut = rng.range(0, w.bytes.len() as u64 + 1) as usize;
    let end = offset + cut;
    if inode.data.len() < end {
        inode.data.resize(end, 0);
    }
    inode.data[offset..end].copy_from_slice(&w.bytes[..cut]);
    if garbage && cut > 0 && rng.range(0, 2) == 1 {
        let junk = 1 + rng.range(0, cut.min(16) as u64) as usize;
        for byte in &mut inode.data[end - junk..end] {
            *byte = rng.next_u64() as u8;
        }
    }
    inode.durable = inode.data.clone();
}
