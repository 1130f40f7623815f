//! Per-request bodies: a copy of a pre-rendered template with fresh ids,
//! users and the current time written into its slots, gzipped if asked.
//! This is the whole per-request cost of building a body; nothing is
//! serialized here.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use eventpipe_sample::mix::{Shape, Templates};
use eventpipe_sample::random::Rng;

use crate::ledger::{Blocks, RunIds, Tally};

/// Ids of recently accepted events a VU keeps for retries.
const RETRY_RING: usize = 256;

/// What the VUs share to build bodies.
#[derive(Debug)]
pub struct BodySource {
    /// The rendered pool.
    pub templates: Templates,
    /// How events are shaped.
    pub shape: Shape,
    /// The run's id scheme.
    pub ids: RunIds,
    /// Sequence-number blocks.
    pub blocks: Blocks,
    /// Whether to gzip bodies.
    pub gzip: bool,
}

/// A request ready to send.
#[derive(Debug)]
pub struct Prepared {
    /// The body (gzipped if configured).
    pub body: Bytes,
    /// Whether every event in it is valid.
    pub valid: bool,
}

/// One VU's body maker, with its part of the ledger.
#[derive(Debug)]
pub struct Bodies {
    source: Arc<BodySource>,
    rng: Rng,
    /// The ledger part this VU fills.
    pub tally: Tally,
    /// Sequence numbers in the body last prepared.
    pub seqs: Vec<u64>,
    accepted: Vec<u64>,
    retry_at: usize,
}

impl Bodies {
    /// A body maker for VU `vu`.
    pub fn new(source: Arc<BodySource>, vu: u64) -> Self {
        let seed = source.shape.seed ^ vu.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED;
        Self {
            source,
            rng: Rng::new(seed),
            tally: Tally::default(),
            seqs: Vec::new(),
            accepted: Vec::with_capacity(RETRY_RING),
            retry_at: 0,
        }
    }

    /// The next body, stamped with `now` (RFC 3339, 24 bytes).
    pub fn prepare(&mut self, now: &[u8; 24]) -> Prepared {
        let source = &*self.source;
        let template =
            &source.templates.list[self.rng.below(source.templates.list.len() as u64) as usize];
        self.seqs.clear();
        let (accepted, tally, seqs) = (&self.accepted, &mut self.tally, &mut self.seqs);
        let body = template.render(&mut self.rng, source.shape.users, now, |rng, slot| {
            let retry = !accepted.is_empty() && rng.chance(source.shape.duplicate_fraction);
            let seq = if retry {
                *rng.pick(accepted)
            } else {
                tally.next(&source.blocks)
            };
            source.ids.write(seq, slot);
            seqs.push(seq);
        });
        let body = if source.gzip { gzip(&body) } else { body };
        Prepared {
            body: Bytes::from(body),
            valid: template.valid,
        }
    }

    /// Records the answer to the last body: `flag` for each of its events;
    /// accepted ids become candidates for retries.
    pub fn settle(&mut self, flag: u8) {
        for &seq in &self.seqs {
            self.tally.mark(seq, flag);
        }
        if flag == crate::ledger::ACCEPTED && self.source.shape.duplicate_fraction > 0.0 {
            for &seq in &self.seqs {
                if self.accepted.len() < RETRY_RING {
                    self.accepted.push(seq);
                } else {
                    self.accepted[self.retry_at] = seq;
                    self.retry_at = (self.retry_at + 1) % RETRY_RING;
                }
            }
        }
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}
