//! Migrating a populated database to the time-partitioned tables keeps
//! every row: the old tables become partitions, the new keys hold, and the
//! write path dedups against the rows that were there before.

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use eventpipe_store::{DEFAULT_DEDUP_WINDOW, MIGRATIONS, NewEvent, partitions};

/// The last migration before partitioning.
const BEFORE_PARTITIONING: &str = "20261201000001";

#[derive(QueryableByName)]
struct Fingerprint {
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = Text)]
    digest: String,
}

/// Rows of `table` and a digest of every row's text.
/// Rows and a digest of every column, but those later migrations add
/// (empty on the rows they find: `anomalies.evidence`).
async fn fingerprint(conn: &mut AsyncPgConnection, table: &str, key: &str) -> (i64, String) {
    let f: Fingerprint = sql_query(format!(
        "SELECT count(*) AS rows,
                coalesce(md5(string_agg((to_jsonb(t) - 'evidence')::text, '|' ORDER BY {key})), '') AS digest
         FROM {table} AS t"
    ))
    .get_result(conn)
    .await
    .unwrap();
    (f.rows, f.digest)
}

#[derive(QueryableByName)]
struct Kind {
    #[diesel(sql_type = Text)]
    kind: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_populated_database_keeps_every_row() {
    let server = crate::server();
    let name = format!(
        "eventpipe_store_migration_{}",
        uuid::Uuid::new_v4().simple()
    );
    let mut admin = AsyncPgConnection::establish(&format!("{server}/postgres"))
        .await
        .unwrap();
    sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("{server}/{name}");

    let mut harness = AsyncMigrationHarness::new(AsyncPgConnection::establish(&url).await.unwrap());
    loop {
        let version = harness.run_next_migration(MIGRATIONS).unwrap();
        if version.to_string() == BEFORE_PARTITIONING {
            break;
        }
    }
    drop(harness);

    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    // 20,000 events over ten days, one from 1990 and one four minutes ahead;
    // anomalies for every hundredth, half of those still in the outbox.
    sql_query(
        "INSERT INTO events (event_id, user_id, event_type, source, event_ts, timestamp_raw, received_at, payload, kafka_partition, kafka_offset)
         SELECT gen_random_uuid(), 'user-' || (i % 300), 'click', 'api',
                CASE i WHEN 1 THEN timestamptz '1990-06-01 12:00:00+00'
                       WHEN 2 THEN now() + interval '4 minutes'
                       ELSE now() - i * interval '43 seconds' END,
                to_jsonb(i), now(), jsonb_build_object('n', i), i % 6, i
         FROM generate_series(1, 20000) AS i",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sql_query(
        "INSERT INTO anomalies (anomaly_id, event_id, user_id, rule, severity, description, event_ts, details)
         SELECT gen_random_uuid(), event_id, user_id, 'rule', 'low', 'seen', event_ts, '{}'
         FROM events WHERE kafka_offset % 100 = 0",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sql_query("INSERT INTO anomaly_outbox (anomaly_id) SELECT anomaly_id FROM anomalies LIMIT 100")
        .execute(&mut conn)
        .await
        .unwrap();
    let before = [
        fingerprint(&mut conn, "events", "event_id").await,
        fingerprint(&mut conn, "anomalies", "anomaly_id").await,
        fingerprint(&mut conn, "anomaly_outbox", "anomaly_id").await,
        fingerprint(&mut conn, "v_events", "event_id").await,
    ];
    assert_eq!(before[0].0, 20_000);

    // Partitioning, and every migration after it.
    let after_partitioning =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
            .unwrap()
            .filter(|e| {
                let name = e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                let version: String = name.split('_').next().unwrap().replace('-', "");
                version.as_str() > BEFORE_PARTITIONING
            })
            .count();
    assert!(after_partitioning >= 1);
    assert_eq!(
        eventpipe_store::migrate(&url).await.unwrap(),
        after_partitioning
    );

    let after = [
        fingerprint(&mut conn, "events", "event_id").await,
        fingerprint(&mut conn, "anomalies", "anomaly_id").await,
        fingerprint(&mut conn, "anomaly_outbox", "anomaly_id").await,
        fingerprint(&mut conn, "v_events", "event_id").await,
    ];
    assert_eq!(after, before, "rows changed in the migration");
    for parent in ["events", "anomalies"] {
        let kind: Kind = sql_query(format!(
            "SELECT relkind::text AS kind FROM pg_class WHERE oid = '{parent}'::regclass"
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        assert_eq!(kind.kind, "p", "{parent} is not partitioned");
        let list = partitions::list(&mut conn, parent).await.unwrap();
        // The old table holds everything before the end of its latest day,
        // then a partition per day, then the default.
        assert!(list[0].table.starts_with(&format!("{parent}_until_")));
        assert_eq!(list[0].from, None);
        assert_eq!(list.len(), 5, "{list:?}");
        assert!(list[4].is_default());
        assert_eq!(list[0].to, list[1].from);
    }

    // The write path dedups against rows stored before the migration.
    let pool = eventpipe_store::pool(&url, 1).await.unwrap();
    let stored: Vec<NewEvent> = {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            event_id: uuid::Uuid,
            #[diesel(sql_type = diesel::sql_types::Timestamptz)]
            event_ts: chrono::DateTime<chrono::Utc>,
        }
        let rows: Vec<Row> =
            sql_query("SELECT event_id, event_ts FROM events ORDER BY kafka_offset LIMIT 3")
                .load(&mut conn)
                .await
                .unwrap();
        rows.into_iter()
            .map(|r| NewEvent {
                event_id: r.event_id,
                user_id: "user-1".to_owned(),
                event_type: "click".to_owned(),
                source: "api".to_owned(),
                event_ts: r.event_ts,
                timestamp_raw: None,
                received_at: chrono::Utc::now(),
                payload: "{}".to_owned(),
                kafka_partition: 0,
                kafka_offset: 0,
            })
            .collect()
    };
    let again = eventpipe_store::store_batch(&pool, &stored, DEFAULT_DEDUP_WINDOW)
        .await
        .unwrap();
    assert_eq!(
        again.inserted, 0,
        "a row stored before the migration was stored again"
    );
    drop(pool);
    drop(conn);

    sql_query(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
