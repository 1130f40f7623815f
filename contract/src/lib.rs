//! The eventpipe event contract, shared by every service that reads or
//! writes events: the wire format v1 and its validation rules
//! ([`validate`]), the normalized record carried on Kafka ([`record`]),
//! the topic and header names the services agree on ([`kafka`]), and the
//! anomaly record the worker stores and publishes ([`anomaly`]).

pub mod anomaly;
mod currency;
mod field_error;
pub mod kafka;
mod object;
mod payload;
pub mod record;
pub mod rfc3339;
pub mod schema;
pub mod validate;

pub use anomaly::Anomaly;
pub use payload::KNOWN_TYPES;
pub use record::EventRecord;
pub use validate::{FieldError, Rules, check_record, validate_event};
