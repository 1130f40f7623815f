use std::io::Write;

use axum::http::HeaderValue;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::*;

fn limits() -> Limits {
    Limits {
        max_body_bytes: 1000,
        max_decompressed_bytes: 100,
        max_batch_events: 3,
        max_event_bytes: 60,
    }
}

fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap()))
        .collect()
}

fn status(e: AppError) -> (u16, String) {
    use axum::response::IntoResponse;
    let message = e.to_string();
    (e.into_response().status().as_u16(), message)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn content_types() {
    let ok = [
        ("application/json", Format::Json),
        ("Application/JSON; charset=UTF-8", Format::Json),
        ("application/x-ndjson", Format::NdJson),
    ];
    for (ct, want) in ok {
        assert_eq!(
            format_of(&headers(&[(header::CONTENT_TYPE, ct)])).unwrap(),
            want
        );
    }
    for ct in [
        "text/plain",
        "application/json; charset=latin1",
        "application/xml",
    ] {
        let (code, msg) = status(format_of(&headers(&[(header::CONTENT_TYPE, ct)])).unwrap_err());
        assert_eq!(code, 415, "{ct}");
        assert!(msg.contains("not supported"), "{msg}");
    }
    let (code, msg) = status(format_of(&HeaderMap::new()).unwrap_err());
    assert_eq!((code, msg.starts_with("missing Content-Type")), (415, true));
}

#[test]
fn gzip_is_undone_within_the_cap() {
    let h = headers(&[(header::CONTENT_ENCODING, "gzip")]);
    assert_eq!(
        &*decode(&h, &gzip(b"{\"a\":1}"), &limits()).unwrap(),
        b"{\"a\":1}"
    );
    let (code, msg) = status(decode(&h, &gzip(&[b' '; 101]), &limits()).unwrap_err());
    assert_eq!(code, 413);
    assert!(msg.contains("more than 100 bytes"), "{msg}");
    let (code, msg) = status(decode(&h, b"not gzip", &limits()).unwrap_err());
    assert_eq!(code, 400);
    assert!(msg.contains("not valid gzip"), "{msg}");
    let br = headers(&[(header::CONTENT_ENCODING, "br")]);
    assert_eq!(status(decode(&br, b"x", &limits()).unwrap_err()).0, 415);
    assert_eq!(
        &*decode(&HeaderMap::new(), b"raw", &limits()).unwrap(),
        b"raw"
    );
}

#[test]
fn utf8_errors_say_where() {
    let (code, msg) = status(text(b"{\"a\":\"\xff\"}").unwrap_err());
    assert_eq!(code, 400);
    assert!(msg.contains("offset 6"), "{msg}");
}

#[test]
fn json_framing() {
    let l = limits();
    assert_eq!(split(Format::Json, r#" {"a":1} "#, &l).unwrap().len(), 1);
    assert_eq!(
        split(Format::Json, r#"[{"a":1},{"b":2}]"#, &l)
            .unwrap()
            .len(),
        2
    );
    let (code, msg) = status(split(Format::Json, r#"[{"a":1},"#, &l).unwrap_err());
    assert_eq!(code, 400);
    assert!(msg.contains("line 1 column 9"), "{msg}");
    let (code, msg) = status(split(Format::Json, "{\n\"a\" 1}", &l).unwrap_err());
    assert_eq!(code, 400);
    assert!(msg.contains("line 2 column 5"), "{msg}");
    assert_eq!(status(split(Format::Json, "   ", &l).unwrap_err()).0, 400);
    assert_eq!(status(split(Format::Json, "[]", &l).unwrap_err()).0, 422);
    assert_eq!(status(split(Format::Json, "42", &l).unwrap_err()).0, 422);
    assert_eq!(status(split(Format::Json, "4 2", &l).unwrap_err()).0, 400);
    let (code, msg) = status(split(Format::Json, "[{},{},{},{}]", &l).unwrap_err());
    assert_eq!(code, 413);
    assert!(msg.contains("holds 4 events; at most 3"), "{msg}");
    let big = format!(r#"[{{}},{{"a":"{}"}}]"#, "x".repeat(60));
    let (code, msg) = status(split(Format::Json, &big, &l).unwrap_err());
    assert_eq!(code, 413);
    assert!(msg.contains("event 1 is 68 bytes; at most 60"), "{msg}");
}

#[test]
fn ndjson_framing() {
    let l = limits();
    assert_eq!(
        split(Format::NdJson, "{\"a\":1}\r\n\n{\"b\":2}\n", &l)
            .unwrap()
            .len(),
        2
    );
    let (code, msg) = status(split(Format::NdJson, "{}\n{oops}\n", &l).unwrap_err());
    assert_eq!(code, 400);
    assert!(msg.contains("on line 2"), "{msg}");
    assert_eq!(
        status(split(Format::NdJson, "{}\n{}\n{}\n{}\n", &l).unwrap_err()).0,
        413
    );
    assert_eq!(
        status(split(Format::NdJson, "\n\n", &l).unwrap_err()).0,
        422
    );
}

#[test]
fn validation_lists_every_error_with_its_index() {
    let body = r#"[{"user_id":"u","type":"login"},{"type":"x"},{"user_id":"u","type":"purchase","payload":{"amount":-1}}]"#;
    let events = split(
        Format::Json,
        body,
        &Limits {
            max_event_bytes: 1000,
            ..limits()
        },
    )
    .unwrap();
    let Err(AppError::Invalid(errors)) = validate(&events, Utc::now(), &Rules::default()) else {
        panic!("expected invalid");
    };
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.index, e.pointer.as_str()))
        .collect();
    assert_eq!(got, [(1, "/user_id"), (2, "/payload/amount")]);
}
