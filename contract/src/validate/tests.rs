use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn check(json: &str) -> Result<EventRecord<'_>, Vec<(String, String)>> {
    check_with(json, &Rules::default())
}

fn check_with<'a>(json: &'a str, rules: &Rules) -> Result<EventRecord<'a>, Vec<(String, String)>> {
    let raw: &RawValue = serde_json::from_str(json).unwrap();
    validate_event(raw, now(), rules)
        .map_err(|errors| errors.into_iter().map(|e| (e.pointer, e.message)).collect())
}

fn single_error(json: &str) -> (String, String) {
    let errors = check(json).map(|_| ()).unwrap_err();
    assert_eq!(errors.len(), 1, "{json}: {errors:?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn minimal_event_gets_defaults() {
    let e = check(r#"{"user_id":"u1","type":"click"}"#).unwrap();
    assert_eq!(e.event_id.get_version_num(), 7);
    assert_eq!(e.source, "api");
    assert_eq!(e.timestamp, now());
    assert!(e.timestamp_raw.is_none());
    assert_eq!(e.payload.get(), "{}");
}

#[test]
fn full_event_is_kept() {
    let e = check(
        r#"{"event_id":"6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162","user_id":"u\"1","type":"purchase",
            "source":"web","timestamp":"2026-11-23T13:00:00+01:00","payload":{"amount":5,"currency":"EUR"}}"#,
    )
    .unwrap();
    assert_eq!(
        e.event_id.to_string(),
        "6f1c2a5e-3b7d-4c1e-9a2b-1d2e3f405162"
    );
    assert_eq!(e.user_id, "u\"1");
    assert_eq!(e.source, "web");
    assert_eq!(e.timestamp, now());
    assert_eq!(
        e.timestamp_raw.unwrap().get(),
        r#""2026-11-23T13:00:00+01:00""#
    );
}

#[test]
fn nulls_count_as_absent_for_optional_fields() {
    let e = check(r#"{"user_id":"u","type":"t","source":null,"payload":null,"event_id":null}"#)
        .unwrap();
    assert_eq!(e.source, "api");
    assert_eq!(e.payload.get(), "{}");
}

#[test]
fn numeric_user_id_becomes_its_decimal_string() {
    assert_eq!(
        check(r#"{"user_id":123,"type":"t"}"#).unwrap().user_id,
        "123"
    );
    // JSON Schema's integers: a zero fraction or an exponent is the same
    // whole number (the fuzzer sent 10858010785.0).
    for (sent, kept) in [
        ("10858010785.0", "10858010785"),
        ("1.2e1", "12"),
        ("120E-1", "12"),
        ("5e2", "500"),
        ("0.0", "0"),
        ("-0", "0"),
        ("1.8446744073709551615e19", "18446744073709551615"),
    ] {
        let event = format!(r#"{{"user_id":{sent},"type":"t"}}"#);
        assert_eq!(check(&event).unwrap().user_id, kept, "{sent}");
    }
    for sent in ["-1", "1.5", "1e-3", "12.01e1"] {
        let (p, m) = single_error(&format!(r#"{{"user_id":{sent},"type":"t"}}"#));
        assert_eq!(p, "/user_id");
        assert_eq!(
            m,
            format!(
                "must be a string or a whole number from 0 to 18446744073709551615 (got {sent})"
            )
        );
    }
    for sent in ["1e20", "1.8446744073709551616e19", "1e400"] {
        let (_, m) = single_error(&format!(r#"{{"user_id":{sent},"type":"t"}}"#));
        assert!(m.contains("must fit in 64 bits"), "{sent}: {m}");
    }
}

#[test]
fn numeric_user_ids_fit_in_64_bits_and_event_ids_are_hyphenated() {
    assert_eq!(
        check(r#"{"user_id":18446744073709551615,"type":"t"}"#)
            .unwrap()
            .user_id,
        "18446744073709551615"
    );
    let (p, m) = single_error(r#"{"user_id":18446744073709551616,"type":"t"}"#);
    assert_eq!(p, "/user_id");
    assert!(m.contains("must fit in 64 bits"), "{m}");
    for id in [
        "0193a5c27e1a7b3c9f002b1d4c5e6f70",
        "{0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f70}",
        "urn:uuid:0193a5c2-7e1a-7b3c-9f00-2b1d4c5e6f70",
    ] {
        let (p, _) = single_error(&format!(
            r#"{{"event_id":"{id}","user_id":"u","type":"t"}}"#
        ));
        assert_eq!(p, "/event_id", "{id}");
    }
    let upper = r#"{"event_id":"0193A5C2-7E1A-7B3C-9F00-2B1D4C5E6F70","user_id":"u","type":"t"}"#;
    assert!(
        check(upper).is_ok(),
        "hyphenated upper-case hex is a UUID too"
    );
}

#[test]
fn every_bad_field_is_named() {
    let long = "x".repeat(129);
    let cases = [
        (
            r#"[]"#.to_owned(),
            "",
            "an event must be a JSON object, got an array",
        ),
        (r#"{"type":"t"}"#.to_owned(), "/user_id", "is required"),
        (
            r#"{"user_id":null,"type":"t"}"#.to_owned(),
            "/user_id",
            "is required",
        ),
        (
            r#"{"user_id":"","type":"t"}"#.to_owned(),
            "/user_id",
            "must not be empty",
        ),
        (
            format!(r#"{{"user_id":"{long}","type":"t"}}"#),
            "/user_id",
            "at most 128 characters, got 129",
        ),
        (
            r#"{"user_id":"a\u0007b","type":"t"}"#.to_owned(),
            "/user_id",
            "control characters",
        ),
        (
            r#"{"user_id":true,"type":"t"}"#.to_owned(),
            "/user_id",
            "must be a string (got a boolean)",
        ),
        (r#"{"user_id":"u"}"#.to_owned(), "/type", "is required"),
        (
            r#"{"user_id":"u","type":"Login"}"#.to_owned(),
            "/type",
            "must match ^[a-z][a-z0-9_.-]{0,63}$",
        ),
        (
            r#"{"user_id":"u","type":"9x"}"#.to_owned(),
            "/type",
            "must match",
        ),
        (
            r#"{"user_id":"u","type":"a b"}"#.to_owned(),
            "/type",
            "must match",
        ),
        (
            format!(r#"{{"user_id":"u","type":"a{}"}}"#, "b".repeat(64)),
            "/type",
            "must match",
        ),
        (
            r#"{"user_id":"u","type":"t","source":""}"#.to_owned(),
            "/source",
            "must not be empty",
        ),
        (
            format!(
                r#"{{"user_id":"u","type":"t","source":"{}"}}"#,
                "s".repeat(65)
            ),
            "/source",
            "at most 64",
        ),
        (
            r#"{"user_id":"u","type":"t","event_id":"nope"}"#.to_owned(),
            "/event_id",
            "must be a UUID",
        ),
        (
            r#"{"user_id":"u","type":"t","event_id":5}"#.to_owned(),
            "/event_id",
            "must be a UUID string (got a number)",
        ),
        (
            r#"{"user_id":"u","type":"t","event_id":"00000000-0000-0000-0000-000000000000"}"#
                .to_owned(),
            "/event_id",
            "nil UUID",
        ),
        (
            r#"{"user_id":"u","type":"t","timestamp":"yesterday"}"#.to_owned(),
            "/timestamp",
            "RFC 3339",
        ),
        (
            r#"{"user_id":"u","type":"t","timestamp":1.5}"#.to_owned(),
            "/timestamp",
            "epoch milliseconds, got 1.5",
        ),
        (
            r#"{"user_id":"u","type":"t","timestamp":-1}"#.to_owned(),
            "/timestamp",
            "from 0 to",
        ),
        (
            r#"{"user_id":"u","type":"t","timestamp":"2026-11-23T12:05:01Z"}"#.to_owned(),
            "/timestamp",
            "301 s in the future; at most 300 s",
        ),
        (
            r#"{"user_id":"u","type":"t","payload":[1]}"#.to_owned(),
            "/payload",
            "must be a JSON object, got an array",
        ),
        (
            r#"{"user_id":"u","type":"t","payload":"{}"}"#.to_owned(),
            "/payload",
            "got a string",
        ),
        (
            r#"{"user_id":"u","type":"t","usr_id":"u"}"#.to_owned(),
            "/usr_id",
            "unknown field",
        ),
        (
            r#"{"user_id":"u","type":"t","a/b":1}"#.to_owned(),
            "/a~1b",
            "unknown field",
        ),
        (
            r#"{"user_id":"u","type":"t","type":"x"}"#.to_owned(),
            "/type",
            "field appears twice",
        ),
        (
            r#"{"user_id":"u","type":"purchase","payload":{"amount":-1}}"#.to_owned(),
            "/payload/amount",
            ">= 0",
        ),
        (
            r#"{"user_id":"u","type":"t","payload":{"a":"x\u0000y"}}"#.to_owned(),
            "/payload",
            "NUL",
        ),
    ];
    for (json, pointer, message) in cases {
        let (p, m) = single_error(&json);
        assert_eq!(p, pointer, "{json}");
        assert!(m.contains(message), "{json}: {m}");
    }
}

#[test]
fn timestamps_at_the_limits() {
    assert!(check(r#"{"user_id":"u","type":"t","timestamp":"2026-11-23T12:05:00Z"}"#).is_ok());
    assert!(check(r#"{"user_id":"u","type":"t","timestamp":0}"#).is_ok());
    assert!(
        check(r#"{"user_id":"u","type":"t","timestamp":"1999-01-01T00:00:00.123456Z"}"#).is_ok()
    );
    let rules = Rules {
        max_future: Duration::seconds(0),
        ..Rules::default()
    };
    assert!(
        check_with(
            r#"{"user_id":"u","type":"t","timestamp":"2026-11-23T12:00:01Z"}"#,
            &rules
        )
        .is_err()
    );
}

#[test]
fn all_errors_are_listed_at_once() {
    let errors = check(r#"{"user_id":"","type":"X","timestamp":"no","payload":1,"extra":2}"#)
        .map(|_| ())
        .unwrap_err();
    let pointers: Vec<_> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        pointers,
        ["/extra", "/user_id", "/type", "/timestamp", "/payload"]
    );
}

#[test]
fn strict_mode_rejects_unknown_types_only() {
    let strict = Rules {
        strict_types: true,
        ..Rules::default()
    };
    assert!(check_with(r#"{"user_id":"u","type":"login"}"#, &strict).is_ok());
    let errors = check_with(r#"{"user_id":"u","type":"signup"}"#, &strict)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(errors[0].0, "/type");
    assert!(
        errors[0]
            .1
            .contains("strict mode accepts only login, purchase")
    );
    assert!(check(r#"{"user_id":"u","type":"signup"}"#).is_ok());
}

#[test]
fn records_from_kafka_are_checked_with_the_same_rules() {
    let mut record = check(r#"{"user_id":"u","type":"click"}"#).unwrap();
    assert!(check_record(&record).is_ok());
    record.event_type = Cow::Borrowed("Not Valid");
    assert_eq!(check_record(&record).unwrap_err().pointer, "/type");
    record.event_type = Cow::Borrowed("click");
    record.user_id = Cow::Borrowed("");
    assert_eq!(check_record(&record).unwrap_err().pointer, "/user_id");
    record.user_id = Cow::Borrowed("u");
    record.payload = serde_json::from_str("[1]").unwrap();
    assert_eq!(check_record(&record).unwrap_err().pointer, "/payload");
}
