//! `src/schema.rs` (Diesel's view of the tables, in `diesel print-schema`
//! form, written by hand because diesel_cli needs libpq) is checked against
//! what the migrations build: every table with every column, its type and
//! nullability, its primary key (for `events`, partitioned without one,
//! its partitions' unique `event_id` and the partition key), and every
//! table listed in
//! `allow_tables_to_appear_in_same_query!`.

use std::collections::BTreeMap;

use diesel::sql_query;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use eventpipe_store::ScratchDatabase;

/// table → (primary key columns, columns as `name -> Type`)
type Tables = BTreeMap<String, (Vec<String>, Vec<String>)>;

/// Reads `src/schema.rs`'s `table!` blocks and its same-query list.
fn declared() -> (Tables, Vec<String>) {
    let text = include_str!("../../src/schema.rs");
    let mut tables = Tables::new();
    let mut rest = text;
    while let Some(at) = rest.find("diesel::table! {") {
        let block = &rest[at..];
        let end = block.find("\n}\n").unwrap();
        let mut lines = block[..end].lines().skip(1);
        let head = lines.next().unwrap().trim();
        let (name, key) = head.split_once(' ').unwrap();
        let key = key.trim_start_matches('(').split(')').next().unwrap();
        let columns = lines
            .map(str::trim)
            .filter(|l| l.contains("->"))
            .map(|l| l.trim_end_matches(',').to_owned())
            .collect();
        let key = key.split(',').map(|k| k.trim().to_owned()).collect();
        tables.insert(name.to_owned(), (key, columns));
        rest = &block[end..];
    }
    let same_query = text
        .split("allow_tables_to_appear_in_same_query!(")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    (tables, same_query)
}

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    udt_name: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
    #[diesel(sql_type = Bool)]
    in_key: bool,
}

/// The tables the migrations make, in the same form.
async fn migrated(url: &str) -> Tables {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let columns: Vec<Column> = sql_query(
        "SELECT c.table_name::text, c.column_name::text, c.udt_name::text,
                c.is_nullable = 'YES' AS nullable,
                EXISTS (SELECT 1 FROM information_schema.key_column_usage k
                        JOIN information_schema.table_constraints t USING (constraint_name, table_schema, table_name)
                        WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema
                          AND k.table_name = c.table_name AND k.column_name = c.column_name)
                -- A partitioned table without a primary key (events): the
                -- unique key each partition has (its default's), with the
                -- partition key, is what identifies a row.
                OR EXISTS (SELECT 1 FROM pg_constraint AS k
                           JOIN pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                           WHERE k.conrelid = to_regclass(c.table_name || '_default') AND k.contype IN ('p', 'u')
                             AND a.attname = c.column_name)
                OR EXISTS (SELECT 1 FROM pg_partitioned_table AS p
                           JOIN pg_attribute AS a ON a.attrelid = p.partrelid AND a.attnum = ANY (p.partattrs)
                           WHERE p.partrelid = to_regclass(c.table_name) AND a.attname = c.column_name
                             AND NOT EXISTS (SELECT 1 FROM pg_constraint AS pk
                                             WHERE pk.conrelid = p.partrelid AND pk.contype = 'p')) AS in_key
         FROM information_schema.columns c
         JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND c.table_name NOT LIKE '\\_\\_%'
           -- Partitions are the worker's, not Diesel's: their parent is.
           AND NOT EXISTS (SELECT 1 FROM pg_inherits AS i
                           WHERE i.inhrelid = format('%I.%I', c.table_schema, c.table_name)::regclass)
         ORDER BY c.table_name, c.ordinal_position",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut tables = Tables::new();
    for c in columns {
        let diesel_type = match c.udt_name.as_str() {
            "uuid" => "Uuid",
            "text" => "Text",
            "timestamptz" => "Timestamptz",
            "jsonb" => "Jsonb",
            "int2" => "Int2",
            "int4" => "Int4",
            "int8" => "Int8",
            "float8" => "Float8",
            "bool" => "Bool",
            other => panic!(
                "{}.{}: no Diesel type known for {other}",
                c.table_name, c.column_name
            ),
        };
        let diesel_type = if c.nullable {
            format!("Nullable<{diesel_type}>")
        } else {
            diesel_type.to_owned()
        };
        let entry = tables.entry(c.table_name).or_default();
        if c.in_key {
            entry.0.push(c.column_name.clone());
        }
        entry.1.push(format!("{} -> {diesel_type}", c.column_name));
    }
    tables
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_rs_matches_the_migrated_database() {
    let db = ScratchDatabase::create(&crate::server(), "eventpipe_store_test")
        .await
        .unwrap();
    let (declared, same_query) = declared();
    let migrated = migrated(&db.url).await;
    for (table, (key, columns)) in &migrated {
        let Some((declared_key, declared_columns)) = declared.get(table) else {
            panic!("src/schema.rs has no table! for {table}: add it (columns {columns:?})");
        };
        let mut key = key.clone();
        let mut declared_key = declared_key.clone();
        key.sort();
        declared_key.sort();
        assert_eq!(declared_key, key, "src/schema.rs: primary key of {table}");
        assert_eq!(
            declared_columns, columns,
            "src/schema.rs: columns of {table}"
        );
    }
    let extra: Vec<_> = declared
        .keys()
        .filter(|t| !migrated.contains_key(*t))
        .collect();
    assert!(
        extra.is_empty(),
        "src/schema.rs declares tables the migrations do not make: {extra:?}"
    );
    let mut listed = same_query.clone();
    listed.sort();
    let all: Vec<_> = migrated.keys().cloned().collect();
    assert_eq!(
        listed, all,
        "src/schema.rs: allow_tables_to_appear_in_same_query! must list every table"
    );
}
