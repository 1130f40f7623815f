//! Whether a span is made and kept: the switch [`enabled`] that the
//! [`span!`](crate::span) macros (in `telemetry/mod.rs`) read, the sampler consulted before a
//! span is made ([`trace_request`], [`decided`], [`sampled`]), and
//! [`FollowLinks`], which keeps a span whose links were sampled.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::Context;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanContext;

use super::propagation::{remote_parent, span_context};

/// Set by [`init`] when traces are exported; read by [`span!`](crate::span).
pub(super) static ENABLED: AtomicBool = AtomicBool::new(false);

/// The configured sampler, for deciding before a span is made.
pub(super) static SAMPLER: std::sync::OnceLock<Sampler> = std::sync::OnceLock::new();

thread_local! {
    /// Set while a span already decided as sampled is started, so the
    /// SDK's sampler keeps it rather than deciding again.
    static DECIDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True when spans are exported (an OTLP endpoint is configured).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether a request with the client's context `parent` (if any) is to be
/// traced, asked of the configured sampler before any span is made: a
/// request left out then costs no span at all. Start the request's span
/// with [`decided`].
pub fn trace_request(parent: Option<&SpanContext>) -> bool {
    use opentelemetry_sdk::trace::IdGenerator;
    if !enabled() {
        return false;
    }
    let Some(sampler) = SAMPLER.get() else {
        return true;
    };
    let cx = parent.map(|p| remote_parent(p.clone()));
    let trace_id = parent.map_or_else(
        || opentelemetry_sdk::trace::RandomIdGenerator::default().new_trace_id(),
        SpanContext::trace_id,
    );
    let decision = sampler
        .should_sample(
            cx.as_ref(),
            trace_id,
            "request",
            &SpanKind::Server,
            &[],
            &[],
        )
        .decision;
    decision == SamplingDecision::RecordAndSample
}

/// Starts `span`, which [`trace_request`] decided to trace, as sampled.
pub fn decided(span: tracing::Span) -> tracing::Span {
    DECIDED.with(|d| d.set(true));
    let _ = span_context(&span);
    DECIDED.with(|d| d.set(false));
    span
}

/// `span` if the sampler keeps it (deciding now), else
/// [`tracing::Span::none`], so nothing under it is made either. Parent and
/// links must be set before: the sampler reads them.
pub fn sampled(span: tracing::Span) -> tracing::Span {
    if span.is_none() || span_context(&span).is_sampled() {
        span
    } else {
        tracing::Span::none()
    }
}

/// Samples a span that has no parent but links to a sampled span, and
/// otherwise asks the configured sampler. A worker batch is the root of its
/// own trace linked to the traces of its events: with this, every event
/// sampled at the API is followed into the worker, whatever the ratio.
#[derive(Debug, Clone)]
pub(super) struct FollowLinks(pub(super) Sampler);

impl ShouldSample for FollowLinks {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let root = parent.is_none_or(|cx| !cx.has_active_span());
        let decided = DECIDED.with(std::cell::Cell::get);
        if decided || (root && links.iter().any(|l| l.span_context.is_sampled())) {
            return SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: Default::default(),
            };
        }
        self.0
            .should_sample(parent, trace_id, name, kind, attributes, links)
    }
}
