use super::*;
use crate::sink::BATCH_BYTES;
use crate::sink::{Delivered, FailureKind, SendError};
use eventpipe_contract::kafka::REDRIVE_UNCOMMITTED_BYTES;

const MAX: u64 = 8 * 1024 * 1024;

fn backlog(max_bytes: Option<u64>, max_messages: Option<u64>) -> Backlog {
    let limits = BacklogLimits {
        max_bytes,
        max_messages,
        group_id: "workers".to_owned(),
        check_interval: Duration::from_millis(100),
    };
    Backlog::new(limits, "events", 65536, "lz4", Metrics::new().unwrap())
}

fn budget(b: &Backlog) -> u64 {
    b.budget.unwrap()
}

/// Where the group stands: (committed, high) per partition.
fn lags(offsets: &[(i64, i64)]) -> Vec<PartitionLag> {
    offsets
        .iter()
        .enumerate()
        .map(|(p, &(committed, high))| PartitionLag {
            partition: i32::try_from(p).unwrap(),
            committed,
            high,
            lag: high - committed,
        })
        .collect()
}

fn read(b: &Backlog, offsets: &[(i64, i64)]) {
    b.observe(&lags(offsets), Instant::now());
}

fn events(placed: &[(i32, u64)]) -> Outgoing<'static> {
    Outgoing::charged(
        placed.iter().map(|p| p.0).collect(),
        placed.iter().map(|p| p.1).collect(),
    )
}

/// Every event acknowledged, at `offsets`.
fn acknowledged(placed: &[(i32, u64)], offsets: &[i64]) -> Sent {
    Sent {
        delivered: placed
            .iter()
            .zip(offsets)
            .map(|(&(partition, _), &offset)| Some(Delivered { partition, offset }))
            .collect(),
        enqueued: placed.len(),
        failure: None,
    }
}

/// Whether `placed` would be admitted (its charges released at once, as
/// for a send refused by the producer).
fn fits(b: &Backlog, placed: &[(i32, u64)]) -> bool {
    match b.reserve(&events(placed)) {
        Ok(reservation) => {
            reservation.settle(&Sent {
                delivered: vec![None; placed.len()],
                enqueued: 0,
                failure: Some(SendError {
                    kind: FailureKind::QueueFull,
                    failed: placed.len(),
                }),
            });
            true
        }
        Err(_) => false,
    }
}

fn charged(b: &Backlog, partition: i32) -> u64 {
    b.lock().partition(partition).charged()
}

fn status(error: AppError) -> (u16, String) {
    match error {
        AppError::Overloaded { detail, .. } => (503, detail),
        AppError::TooLarge(detail) => (413, detail),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_byte_bound_leaves_room_for_a_batch_and_a_redrive() {
    let b = backlog(Some(MAX), None);
    assert_eq!(budget(&b), MAX - headroom(65536, "lz4"));
    // Small events: a batch and the redrive's room.
    assert_eq!(
        headroom(1024, "none"),
        BATCH_BYTES + REDRIVE_UNCOMMITTED_BYTES
    );
    // An event larger than a batch takes the batch's place.
    assert!(headroom(1024 * 1024, "lz4") > 1024 * 1024 + REDRIVE_UNCOMMITTED_BYTES);
}

#[test]
fn nothing_is_admitted_before_the_workers_progress_is_read() {
    let b = backlog(Some(MAX), None);
    assert_eq!(b.placement(), None);
    let (code, detail) = status(b.reserve(&events(&[(0, 100)])).err().unwrap());
    assert_eq!(code, 503);
    assert!(detail.contains("group workers"), "{detail}");
    assert!(b.problem().is_some());
    read(&b, &[(0, 0), (0, 0)]);
    assert_eq!(b.placement(), Some(2));
    assert!(fits(&b, &[(0, 100)]));
    assert_eq!(b.problem(), None);
}

#[test]
fn a_partition_is_refused_at_its_bound_until_the_workers_commit() {
    let b = backlog(Some(MAX), None);
    read(&b, &[(0, 0), (0, 0)]);
    let room = budget(&b);
    // Two requests fill partition 0 to its bound, less 10 bytes.
    let first = [(0, room / 2), (1, 10)];
    let reservation = b.reserve(&events(&first)).unwrap();
    reservation.settle(&acknowledged(&first, &[0, 0]));
    let second = [(0, room - room / 2 - 10)];
    b.reserve(&events(&second))
        .unwrap()
        .settle(&acknowledged(&second, &[1]));
    assert_eq!(charged(&b, 0), room - 10);

    // 11 more bytes for partition 0 are refused, naming it; partition 1
    // still takes events.
    let (code, detail) = status(b.reserve(&events(&[(0, 11)])).err().unwrap());
    assert_eq!(code, 503);
    assert!(detail.contains("partition 0 of events"), "{detail}");
    assert!(detail.contains("API_MAX_BACKLOG_BYTES"), "{detail}");
    assert!(fits(&b, &[(1, 11)]));
    assert!(fits(&b, &[(0, 10)]));
    assert!(b.problem().unwrap().contains("partition 0"));

    // The workers commit up to offset 1 (they resume there): the first
    // request's events (offset 0) are released, the second's stay.
    read(&b, &[(1, 2), (1, 1)]);
    assert_eq!(charged(&b, 0), room - room / 2 - 10);
    assert_eq!(charged(&b, 1), 0);
    read(&b, &[(2, 2), (1, 1)]);
    assert_eq!(charged(&b, 0), 0);
    assert_eq!(b.problem(), None);
}

#[test]
fn in_flight_events_are_charged_until_answered() {
    let b = backlog(Some(MAX), None);
    read(&b, &[(0, 0)]);
    let room = budget(&b);
    let held = b.reserve(&events(&[(0, room)])).unwrap();
    assert_eq!(status(b.reserve(&events(&[(0, 1)])).err().unwrap()).0, 503);
    // Never sent (refused by the producer at once): released.
    held.settle(&Sent {
        delivered: vec![None],
        enqueued: 0,
        failure: Some(SendError {
            kind: FailureKind::QueueFull,
            failed: 1,
        }),
    });
    assert_eq!(charged(&b, 0), 0);
}

#[test]
fn a_failed_send_stays_charged_until_no_late_write_can_land_and_the_workers_pass_it() {
    let b = backlog(Some(MAX), None);
    read(&b, &[(5, 5)]);
    let placed = [(0, 1000), (0, 500)];
    let reservation = b.reserve(&events(&placed)).unwrap();
    // The first acknowledged at 5, the second timed out: it may be at 6.
    reservation.settle(&Sent {
        delivered: vec![
            Some(Delivered {
                partition: 0,
                offset: 5,
            }),
            None,
        ],
        enqueued: 2,
        failure: Some(SendError {
            kind: FailureKind::TimedOut,
            failed: 1,
        }),
    });
    assert_eq!(charged(&b, 0), 1500);
    // The workers pass offset 5 and even the end as read now: the unsure
    // event's produce request could still land later, so it stays.
    read(&b, &[(7, 7)]);
    assert_eq!(charged(&b, 0), 500);
    // A read begun after the settling time notes the end (9)...
    let later = Instant::now() + UNSURE_SETTLES_AFTER + Duration::from_secs(1);
    b.observe(&lags(&[(7, 9)]), later);
    assert_eq!(charged(&b, 0), 500);
    // ...and the charge goes once the workers pass it.
    b.observe(&lags(&[(9, 9)]), later);
    assert_eq!(charged(&b, 0), 0);
}

#[test]
fn an_abandoned_request_stays_charged_as_if_it_had_failed() {
    let b = backlog(Some(MAX), None);
    read(&b, &[(0, 0)]);
    drop(b.reserve(&events(&[(0, 700)])).unwrap());
    assert_eq!(charged(&b, 0), 700);
    read(&b, &[(3, 3)]);
    assert_eq!(charged(&b, 0), 700);
}

#[test]
fn a_backlog_found_at_start_is_charged_at_the_largest_message_each() {
    let b = backlog(Some(64 * 1024 * 1024), None);
    read(&b, &[(10, 13), (4, 4)]);
    assert_eq!(charged(&b, 0), 3 * INHERITED_MESSAGE_BYTES);
    assert_eq!(charged(&b, 1), 0);
    read(&b, &[(12, 20), (4, 4)]);
    assert_eq!(charged(&b, 0), INHERITED_MESSAGE_BYTES);
    read(&b, &[(13, 20), (4, 4)]);
    assert_eq!(charged(&b, 0), 0);
}

#[test]
fn a_request_larger_than_the_bound_ever_leaves_is_too_large() {
    let b = backlog(Some(MAX), None);
    read(&b, &[(0, 0), (0, 0)]);
    let room = budget(&b);
    // Spread over two partitions it fits; on one it never can.
    assert!(fits(&b, &[(0, room), (1, room)]));
    let (code, detail) = status(b.reserve(&events(&[(1, room), (1, 1)])).err().unwrap());
    assert_eq!(code, 413);
    assert!(detail.contains("partition 1"), "{detail}");
}

#[test]
fn the_message_bound_refuses_while_any_partition_is_at_it() {
    let b = backlog(None, Some(100));
    assert_eq!(
        b.placement(),
        None,
        "no byte bound: librdkafka places events"
    );
    read(&b, &[(0, 99), (50, 60)]);
    assert!(fits(&b, &[(0, 1)]));
    assert_eq!(b.problem(), None);
    read(&b, &[(0, 100), (50, 60)]);
    let (code, detail) = status(b.reserve(&events(&[(1, 1)])).err().unwrap());
    assert_eq!(code, 503);
    assert!(
        detail.contains("partition 0 of events has 100 messages"),
        "{detail}"
    );
    assert!(b.problem().unwrap().contains("API_MAX_BACKLOG_MESSAGES"));
    read(&b, &[(1, 100), (50, 60)]);
    assert!(fits(&b, &[(0, 1)]));
    let refused = b
        .metrics
        .backlog_refused
        .with_label_values(&["messages"])
        .get();
    assert_eq!(refused, 1);
}
