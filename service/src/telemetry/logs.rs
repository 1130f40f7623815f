//! Log lines: where they go ([`Logs`]), the subscriber's layers
//! ([`install`]), and JSON lines that carry the current span's trace and
//! span ids ([`WithTraceIds`]).

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where logs go and what is logged by default.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Logs {
    /// Standard output, `info`.
    Service,
    /// Standard error, `warn`.
    Command,
}

/// Installs the log layer and, with a tracer, the span layer; false when a
/// subscriber was installed before (tests, the local launcher), which is kept.
pub(super) fn install(tracer: Option<opentelemetry_sdk::trace::SdkTracer>, logs: Logs) -> bool {
    let otel = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // Names say where a span is from; thread and source attributes
            // would only add bytes to every span.
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target().starts_with("eventpipe") && *meta.level() <= tracing::Level::INFO
            }))
    });
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let default = if logs == Logs::Command {
        "warn"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let to_stderr = logs == Logs::Command;
    let fmt = match (json, to_stderr) {
        (true, false) => tracing_subscriber::fmt::layer()
            .json()
            .map_event_format(WithTraceIds)
            .with_filter(filter)
            .boxed(),
        (true, true) => tracing_subscriber::fmt::layer()
            .json()
            .map_event_format(WithTraceIds)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        (false, false) => tracing_subscriber::fmt::layer().with_filter(filter).boxed(),
        (false, true) => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok()
}

/// Writes JSON log lines with the current span's `trace_id` and `span_id`
/// first, when there is one.
pub(super) struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let cx = Context::current();
        let span = cx.span();
        let ids = span.span_context();
        if !ids.is_valid() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",{rest}",
                ids.trace_id(),
                ids.span_id()
            ),
            None => writer.write_str(&line),
        }
    }
}
