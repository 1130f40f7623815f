//! The eventpipe event contract, shared by every service that reads or
//! writes events: the wire format v1 and its validation rules
//! ([`validate`]), the normalized record carried on Kafka ([`record`]),
//! and the topic and header names the services agree on ([`kafka`]).

mod currency;
mod field_error;
pub mod kafka;
mod object;
mod payload;
pub mod record;
pub mod rfc3339;
pub mod schema;
pub mod validate;

pub use payload::KNOWN_TYPES;
pub use record::EventRecord;
pub use validate::{FieldError, Rules, check_record, validate_event};
