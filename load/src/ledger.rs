//! Which events were sent and what the API said about them, one byte per
//! event. Event ids are not random: each run has a random 48-bit tag, and
//! an event's id is that tag plus its sequence number (a version-8 UUID), so
//! the ledger is an array indexed by sequence number and the audit reads
//! exactly the run's rows with one range scan of the primary key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

/// Sequence numbers are handed out in blocks of this many, one block at a
/// time per VU, so VUs never contend for them.
pub const BLOCK: u64 = 4096;

/// The event was put in a request.
pub const SENT: u8 = 1;
/// A request holding it was accepted.
pub const ACCEPTED: u8 = 2;
/// A request holding it was refused (4xx).
pub const REJECTED: u8 = 4;
/// A request holding it got no definite answer (5xx, timeout, broken
/// connection): it may or may not be stored.
pub const UNKNOWN: u8 = 8;

/// The run's id scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunIds {
    tag: [u8; 6],
}

impl RunIds {
    /// A scheme with a fresh random tag.
    pub fn random() -> Self {
        let bytes = Uuid::new_v4().into_bytes();
        let mut tag = [0; 6];
        tag.copy_from_slice(&bytes[..6]);
        Self { tag }
    }

    /// The id of event `seq` (below 2^56).
    pub fn uuid(&self, seq: u64) -> Uuid {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&self.tag);
        b[6] = 0x80; // version 8: custom layout
        b[8] = 0x80; // RFC 4122 variant
        b[9..].copy_from_slice(&seq.to_be_bytes()[1..]);
        Uuid::from_bytes(b)
    }

    /// Writes the id of event `seq` as 36 characters of hyphenated hex.
    pub fn write(&self, seq: u64, out: &mut [u8]) {
        self.uuid(seq).hyphenated().encode_lower(&mut out[..36]);
    }

    /// The sequence number of `id`, if it belongs to this run.
    pub fn seq(&self, id: &Uuid) -> Option<u64> {
        let b = id.as_bytes();
        if b[..6] != self.tag || b[6] != 0x80 || b[7] != 0 || b[8] != 0x80 {
            return None;
        }
        let mut seq = [0u8; 8];
        seq[1..].copy_from_slice(&b[9..]);
        Some(u64::from_be_bytes(seq))
    }

    /// The first and last ids of sequence numbers `[from, to)`.
    pub fn range(&self, from: u64, to: u64) -> (Uuid, Uuid) {
        (self.uuid(from), self.uuid(to.saturating_sub(1).max(from)))
    }
}

/// Hands out blocks of sequence numbers to VUs.
#[derive(Debug, Default)]
pub struct Blocks {
    next: AtomicU64,
}

impl Blocks {
    fn take(&self) -> u64 {
        self.next.fetch_add(BLOCK, Ordering::Relaxed)
    }
}

/// One VU's part of the ledger.
#[derive(Debug, Default)]
pub struct Tally {
    full: Vec<(u64, Box<[u8]>)>,
    start: u64,
    current: Box<[u8]>,
    used: usize,
}

impl Tally {
    /// A fresh sequence number, marked sent.
    pub fn next(&mut self, blocks: &Blocks) -> u64 {
        if self.used == self.current.len() {
            let fresh = vec![0; BLOCK as usize].into_boxed_slice();
            let done = std::mem::replace(&mut self.current, fresh);
            if !done.is_empty() {
                self.full.push((self.start, done));
            }
            self.start = blocks.take();
            self.used = 0;
        }
        self.current[self.used] |= SENT;
        self.used += 1;
        self.start + self.used as u64 - 1
    }

    /// Adds `flag` to event `seq` (one this tally handed out).
    pub fn mark(&mut self, seq: u64, flag: u8) {
        let flags = if seq >= self.start {
            self.current.get_mut((seq - self.start) as usize)
        } else {
            let at = self.full.partition_point(|(start, _)| *start <= seq);
            at.checked_sub(1)
                .and_then(|i| self.full.get_mut(i))
                .and_then(|(start, flags)| flags.get_mut((seq - *start) as usize))
        };
        if let Some(f) = flags {
            *f |= flag;
        }
    }

    fn into_blocks(self) -> impl Iterator<Item = (u64, Box<[u8]>)> {
        let current = (!self.current.is_empty()).then_some((self.start, self.current));
        self.full.into_iter().chain(current)
    }
}

/// Every VU's tally merged: the flags of every event of the run.
#[derive(Debug, Default)]
pub struct Ledger {
    blocks: BTreeMap<u64, Box<[u8]>>,
}

impl Ledger {
    /// Merges a VU's tally in.
    pub fn absorb(&mut self, tally: Tally) {
        for (start, flags) in tally.into_blocks() {
            self.blocks.insert(start, flags);
        }
    }

    /// The flags of event `seq` (0 if never sent).
    pub fn flags(&self, seq: u64) -> u8 {
        self.blocks
            .range(..=seq)
            .next_back()
            .and_then(|(start, flags)| flags.get((seq - start) as usize))
            .copied()
            .unwrap_or(0)
    }

    /// Every block: (first sequence number, flags).
    pub fn blocks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.blocks.iter().map(|(s, f)| (*s, &f[..]))
    }

    /// Events sent and accepted at least once (each id once).
    pub fn accepted(&self) -> u64 {
        self.blocks
            .values()
            .flat_map(|f| f.iter())
            .filter(|f| *f & ACCEPTED != 0)
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_sequence() {
        let ids = RunIds::random();
        for seq in [0, 1, 4095, 4096, 1 << 40] {
            let id = ids.uuid(seq);
            assert_eq!(ids.seq(&id), Some(seq));
            assert_eq!(id.get_version_num(), 8);
            let mut text = [0u8; 36];
            ids.write(seq, &mut text);
            assert_eq!(std::str::from_utf8(&text).unwrap(), id.to_string());
        }
        assert!(ids.uuid(4095) < ids.uuid(4096));
        assert_eq!(RunIds::random().seq(&ids.uuid(7)), None);
    }

    #[test]
    fn tallies_merge_into_one_ledger() {
        let blocks = Blocks::default();
        let (mut a, mut b) = (Tally::default(), Tally::default());
        let first = a.next(&blocks);
        let second = b.next(&blocks);
        a.mark(first, ACCEPTED);
        b.mark(second, REJECTED);
        let mut ledger = Ledger::default();
        ledger.absorb(a);
        ledger.absorb(b);
        assert_eq!(ledger.flags(first), SENT | ACCEPTED);
        assert_eq!(ledger.flags(second), SENT | REJECTED);
        assert_eq!(ledger.flags(second + 1), 0);
        assert_eq!(ledger.accepted(), 1);
    }
}
