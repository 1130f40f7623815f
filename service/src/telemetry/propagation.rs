//! Trace context across Kafka: W3C `traceparent`/`tracestate` message
//! headers ([`TraceHeaders`]), the same text as the HTTP headers, and the
//! span contexts they carry.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;

use opentelemetry::trace::SpanContext;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header carrying a span's context.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C header carrying vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// A span context as W3C header values, to put on a Kafka message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `traceparent`: version, trace id, parent span id, flags.
    pub traceparent: String,
    /// `tracestate`, when there is any.
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// The headers of `context`; `None` when it is not valid.
    pub fn of(context: &SpanContext) -> Option<Self> {
        context.is_valid().then(|| TraceHeaders {
            traceparent: format!(
                "00-{}-{}-{:02x}",
                context.trace_id(),
                context.span_id(),
                context.trace_flags().to_u8()
            ),
            tracestate: Some(context.trace_state().header()).filter(|s| !s.is_empty()),
        })
    }

    /// The span context these headers carry; `None` when `traceparent` is
    /// malformed (the W3C rules: a bad header is ignored, not an error).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
        struct Pair<'a>(&'a str, Option<&'a str>);
        impl Extractor for Pair<'_> {
            fn get(&self, key: &str) -> Option<&str> {
                match key {
                    TRACEPARENT => Some(self.0),
                    TRACESTATE => self.1,
                    _ => None,
                }
            }
            fn keys(&self) -> Vec<&str> {
                vec![TRACEPARENT, TRACESTATE]
            }
        }
        let cx = TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &Pair(traceparent, tracestate));
        let context = cx.span().span_context().clone();
        context.is_valid().then_some(context)
    }

    /// [`Self::parse`] of these headers.
    pub fn context(&self) -> Option<SpanContext> {
        Self::parse(&self.traceparent, self.tracestate.as_deref())
    }
}

/// An OpenTelemetry context whose active span is the remote `span`, to
/// make it a parent with [`OpenTelemetrySpanExt::set_parent`].
pub fn remote_parent(span: SpanContext) -> Context {
    Context::new().with_remote_span_context(span)
}

/// The span context of `span` (invalid when it is not exported).
pub fn span_context(span: &tracing::Span) -> SpanContext {
    span.context().span().span_context().clone()
}
