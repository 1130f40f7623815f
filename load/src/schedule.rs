//! When each iteration of an arrival-rate executor starts: the open model.
//! The rate is piecewise linear (one flat piece for `constant-arrival-rate`,
//! one piece per stage for `ramping-arrival-rate`), and iteration `k` starts
//! at the moment the integral of the rate reaches `k`, so a stage of 10/s for
//! 10 s starts exactly 100 iterations, the first at its beginning.

use std::time::Duration;

/// One linear piece: the rate (per second) goes from `from` to `to` over
/// `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    /// Length of the piece.
    pub duration: Duration,
    /// Iterations per second at its start.
    pub from: f64,
    /// Iterations per second at its end.
    pub to: f64,
}

impl Piece {
    fn iterations(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration.as_secs_f64()
    }
}

/// The start times of every iteration, as offsets from the test's start.
#[derive(Debug, Clone)]
pub struct Schedule {
    pieces: Vec<Piece>,
    piece: usize,
    /// Offset at which the current piece starts.
    piece_start: f64,
    /// Iterations started before the current piece.
    before: f64,
    next: u64,
}

impl Schedule {
    /// A schedule over `pieces`, played back to back.
    pub fn new(pieces: Vec<Piece>) -> Self {
        Self {
            pieces,
            piece: 0,
            piece_start: 0.0,
            before: 0.0,
            next: 0,
        }
    }

    /// How many iterations the whole schedule starts.
    pub fn total(&self) -> u64 {
        let all: f64 = self.pieces.iter().map(Piece::iterations).sum();
        // Iteration k starts where the integral reaches k, for k = 0..ceil(all).
        (all - 1e-9).ceil().max(0.0) as u64
    }

    /// The schedule's length.
    pub fn duration(&self) -> Duration {
        self.pieces.iter().map(|p| p.duration).sum()
    }

    /// The rate (per second) the schedule asks for at `offset`.
    pub fn rate_at(&self, offset: Duration) -> f64 {
        let mut start = Duration::ZERO;
        for p in &self.pieces {
            if offset < start + p.duration {
                let into = (offset - start).as_secs_f64() / p.duration.as_secs_f64();
                return p.from + (p.to - p.from) * into;
            }
            start += p.duration;
        }
        self.pieces.last().map_or(0.0, |p| p.to)
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let k = self.next as f64;
        loop {
            let piece = *self.pieces.get(self.piece)?;
            let inside = piece.iterations();
            if k < self.before + inside - 1e-9 {
                let tau = offset_within(&piece, k - self.before);
                self.next += 1;
                return Some(Duration::from_secs_f64(self.piece_start + tau));
            }
            self.before += inside;
            self.piece_start += piece.duration.as_secs_f64();
            self.piece += 1;
        }
    }
}

/// Seconds into `piece` at which `n` of its iterations have been started:
/// solves from·τ + (to−from)·τ²/(2·D) = n in the stable form.
fn offset_within(piece: &Piece, n: f64) -> f64 {
    let length = piece.duration.as_secs_f64();
    let a = (piece.to - piece.from) / (2.0 * length);
    let b = piece.from;
    let root = (b * b + 4.0 * a * n).max(0.0).sqrt();
    let denominator = b + root;
    if denominator <= 0.0 {
        0.0
    } else {
        (2.0 * n / denominator).min(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(secs: u64, from: f64, to: f64) -> Piece {
        Piece {
            duration: Duration::from_secs(secs),
            from,
            to,
        }
    }

    #[test]
    fn a_constant_rate_starts_evenly_from_zero() {
        let starts: Vec<Duration> = Schedule::new(vec![piece(2, 2.0, 2.0)]).collect();
        let millis: Vec<u128> = starts.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, vec![0, 500, 1000, 1500]);
    }

    #[test]
    fn total_matches_what_the_iterator_yields() {
        for pieces in [
            vec![piece(10, 100.0, 100.0)],
            vec![
                piece(3, 0.0, 1000.0),
                piece(5, 1000.0, 1000.0),
                piece(2, 1000.0, 0.0),
            ],
            vec![piece(7, 3.3, 3.3)],
        ] {
            let schedule = Schedule::new(pieces);
            assert_eq!(schedule.total(), schedule.clone().count() as u64);
        }
    }

    #[test]
    fn a_ramp_follows_the_integral_of_its_rate() {
        // 0 → 100/s over 10 s: 500 iterations; after 5 s, 125 have started.
        let schedule = Schedule::new(vec![piece(10, 0.0, 100.0)]);
        assert_eq!(schedule.total(), 500);
        let starts: Vec<Duration> = schedule.collect();
        let by_5s = starts.iter().filter(|t| t.as_secs_f64() < 5.0).count();
        assert_eq!(by_5s, 125);
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "not monotonic");
        assert!(starts.last().is_some_and(|t| t.as_secs_f64() < 10.0));
    }

    #[test]
    fn a_ramp_down_and_a_pause_start_nothing_extra() {
        let schedule = Schedule::new(vec![
            piece(2, 10.0, 0.0),
            piece(5, 0.0, 0.0),
            piece(1, 4.0, 4.0),
        ]);
        let starts: Vec<Duration> = schedule.clone().collect();
        assert_eq!(starts.len(), 14);
        assert!(starts[..10].iter().all(|t| t.as_secs_f64() < 2.0));
        assert!(starts[10..].iter().all(|t| t.as_secs_f64() >= 7.0));
        assert!((schedule.rate_at(Duration::from_secs(1)) - 5.0).abs() < 1e-9);
    }
}
