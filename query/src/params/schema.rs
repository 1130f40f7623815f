//! Building blocks of the parameters' schemas: text, the empty value (a
//! parameter's default), bounded integers, enumerations, comma-separated
//! lists.

use eventpipe_contract::schema::NO_CONTROL;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};

use crate::limits::MAX_LIST;

pub(super) fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The empty value: the parameter's default.
pub(super) fn empty() -> Schema {
    text().max_length(Some(0)).into()
}

/// `schema`, or empty for the default.
pub(super) fn or_empty(schema: impl Into<Schema>) -> Schema {
    AnyOfBuilder::new().item(schema.into()).item(empty()).into()
}

/// An integer in `min..=max`, or empty.
pub(super) fn integer(min: i64, max: i64) -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(min))
            .maximum(Some(max)),
    )
}

/// One of `values`, or empty.
pub(super) fn one_of(values: &[&str]) -> Schema {
    text()
        .enum_values(Some(values.iter().copied().chain([""])))
        .into()
}

/// A comma-separated list (`style: form, explode: false`) of `item`s
/// (each may be empty: empty values are skipped); empty is no filter.
pub(super) fn list(item: impl Into<Schema>) -> Schema {
    ArrayBuilder::new()
        .items(utoipa::openapi::RefOr::T(item.into()))
        .max_items(Some(MAX_LIST))
        .into()
}

/// Text of up to `max` characters, none a control character nor a comma.
pub(super) fn list_text(max: usize) -> Schema {
    text()
        .pattern(Some(format!("^[^,{NO_CONTROL}]{{0,{max}}}$")))
        .into()
}
