//! Logs and traces. [`init`] sets up logging (`RUST_LOG`, `LOG_FORMAT`)
//! and, when the standard OpenTelemetry variables name an OTLP endpoint,
//! trace export: spans made with [`span!`](crate::span) go to the
//! collector, and JSON log lines written inside one carry its `trace_id`
//! and `span_id`. With no endpoint set nothing is exported and
//! [`span!`](crate::span) makes no span at all, so tracing costs one
//! relaxed atomic load per would-be span.
//!
//! Trace context crosses Kafka as W3C `traceparent`/`tracestate` message
//! headers ([`TraceHeaders`]), the same text as the HTTP headers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{ConfigError, Env, Var, var};

pub use opentelemetry::KeyValue;
pub use opentelemetry::trace::{SpanContext, Status};
pub use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header carrying a span's context.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// The OpenTelemetry variables every service reads (the standard names;
/// the OTLP exporter also honours the other `OTEL_EXPORTER_OTLP_*`
/// variables, such as `_HEADERS`, `_TIMEOUT` and `_COMPRESSION`, and the
/// batch processor's `OTEL_BSP_*`).
pub const VARS: &[Var] = &[
    var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        "OTLP/HTTP collector base URL (e.g. http://otel-collector:4318); traces are exported only when this or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set",
    ),
    var(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        None,
        "full URL for traces, used as is (overrides OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces)",
    ),
    var(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        Some("http/protobuf"),
        "http/protobuf or http/json (grpc is not built in: use the collector's port 4318)",
    ),
    var(
        "OTEL_SERVICE_NAME",
        None,
        "service.name of the spans (default: the binary's name: eventpipe-api, eventpipe-worker, or eventpipe for the local run)",
    ),
    var(
        "OTEL_RESOURCE_ATTRIBUTES",
        None,
        "extra resource attributes, key=value,key=value (e.g. deployment.environment=prod)",
    ),
    var(
        "OTEL_TRACES_SAMPLER",
        Some("parentbased_always_on"),
        "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
    ),
    var(
        "OTEL_TRACES_SAMPLER_ARG",
        None,
        "the ratio (0 to 1) of the traceidratio samplers, e.g. 0.01 for 1 % (default 1)",
    ),
    var(
        "OTEL_SDK_DISABLED",
        Some("false"),
        "true turns trace export off whatever else is set",
    ),
];

/// Set by [`init`] when traces are exported; read by [`span!`](crate::span).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The configured sampler, for deciding before a span is made.
static SAMPLER: std::sync::OnceLock<Sampler> = std::sync::OnceLock::new();

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

/// An INFO span when traces are exported, else [`tracing::Span::none`]
/// (which costs nothing to enter, record into or drop). Same arguments as
/// [`tracing::info_span!`]. For the root of a trace; steps within one use
/// [`child_span!`](crate::child_span).
#[macro_export]
macro_rules! span {
    ($($arg:tt)+) => {
        if $crate::telemetry::enabled() {
            ::tracing::info_span!($($arg)+)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// A span for a step of the current span's work, made only when the
/// current span is exported: a request or batch the sampler left out
/// makes no spans at all, so sampling at 1 % costs 1 % of the spans.
#[macro_export]
macro_rules! child_span {
    ($($arg:tt)+) => {
        if $crate::telemetry::enabled() && !::tracing::Span::current().is_none() {
            ::tracing::info_span!($($arg)+)
        } else {
            ::tracing::Span::none()
        }
    };
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

/// Where and how traces are exported, from the `OTEL_*` variables.
#[derive(Debug)]
pub struct Export {
    /// `service.name`.
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: Protocol,
    /// `OTEL_TRACES_SAMPLER` with its argument.
    pub sampler: Sampler,
}

/// Reads the `OTEL_*` variables through `lookup`: `None` when no endpoint
/// is set or export is disabled; an error naming the variable when one
/// holds a value that cannot be used.
pub fn export_settings<F: Fn(&str) -> Option<String>>(
    lookup: F,
    default_service: &str,
) -> Result<Option<Export>, ConfigError> {
    let env = Env::new(VARS, lookup);
    let disabled: bool = env
        .optional::<String>("OTEL_SDK_DISABLED")?
        .map(|v| v.eq_ignore_ascii_case("true"))
        .unwrap_or(false);
    let endpoint = env
        .raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .map(|v| ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v))
        .or_else(|| {
            env.raw("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|v| ("OTEL_EXPORTER_OTLP_ENDPOINT", v))
        });
    let Some((endpoint_var, endpoint)) = endpoint.filter(|_| !disabled) else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(ConfigError::new(
            endpoint_var,
            format!("{endpoint:?} is not an http:// or https:// URL"),
        ));
    }
    let protocol = match env
        .raw("OTEL_EXPORTER_OTLP_PROTOCOL")
        .as_deref()
        .map(str::trim)
    {
        None | Some("http/protobuf") => Protocol::HttpBinary,
        Some("http/json") => Protocol::HttpJson,
        Some("grpc") => {
            return Err(ConfigError::new(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "grpc is not built into eventpipe; use http/protobuf (the collector's OTLP/HTTP port, 4318)",
            ));
        }
        Some(other) => {
            return Err(ConfigError::new(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                format!("{other:?} is not a protocol; use http/protobuf or http/json"),
            ));
        }
    };
    let ratio = match env.optional::<f64>("OTEL_TRACES_SAMPLER_ARG")? {
        Some(r) if !(0.0..=1.0).contains(&r) => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER_ARG",
                format!("{r} is not a ratio between 0 and 1"),
            ));
        }
        Some(r) => r,
        None => 1.0,
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    let sampler = match env
        .raw("OTEL_TRACES_SAMPLER")
        .as_deref()
        .map(str::trim)
        .unwrap_or("parentbased_always_on")
    {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio)),
        other => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER",
                format!(
                    "{other:?} is not a sampler; use always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                ),
            ));
        }
    };
    let named_in_attributes = env.raw("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
        attrs
            .split(',')
            .any(|kv| kv.trim().starts_with("service.name="))
    });
    let service_name = match env.raw("OTEL_SERVICE_NAME") {
        Some(name) => name.trim().to_owned(),
        // The resource detector reads it from there.
        None if named_in_attributes => String::new(),
        None => default_service.to_owned(),
    };
    Ok(Some(Export {
        service_name,
        protocol,
        sampler,
    }))
}

/// Samples a span that has no parent but links to a sampled span, and
/// otherwise asks the configured sampler. A worker batch is the root of its
/// own trace linked to the traces of its events: with this, every event
/// sampled at the API is followed into the worker, whatever the ratio.
#[derive(Debug, Clone)]
struct FollowLinks(Sampler);

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

/// Flushes exported spans on [`Telemetry::shutdown`] (or drop).
#[must_use = "dropping it stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is still buffered, waiting up to a few seconds.
    pub fn shutdown(mut self) {
        self.flush_and_stop();
    }

    fn flush_and_stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let stop = move || provider.shutdown_with_timeout(Duration::from_secs(5));
            // The exporter blocks; inside a multi-threaded runtime say so.
            let result = match tokio::runtime::Handle::try_current() {
                Ok(handle)
                    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
                {
                    tokio::task::block_in_place(stop)
                }
                _ => stop(),
            };
            if let Err(error) = result {
                tracing::warn!(%error, "could not export the last spans");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush_and_stop();
    }
}

/// Sets up logging, and trace export when the `OTEL_*` variables ask for
/// it (see [`export_settings`]); `default_service` is the `service.name`
/// when `OTEL_SERVICE_NAME` is unset. Fails on an unusable variable.
pub fn init(default_service: &str) -> anyhow::Result<Telemetry> {
    let export = export_settings(|name| std::env::var(name).ok(), default_service)?;
    let provider = export.map(build_provider).transpose()?;
    let tracer = provider.as_ref().map(|p| p.tracer("eventpipe"));
    if install(tracer, Logs::Service) && provider.is_some() {
        ENABLED.store(true, Ordering::Relaxed);
        tracing::info!("exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

/// Sets up logging only (`RUST_LOG`, `LOG_FORMAT`): for one-off commands.
pub fn init_logging() {
    install(None, Logs::Service);
}

/// Logging for commands whose output is read by people or scripts: to
/// standard error, warnings and errors only unless `RUST_LOG` says more.
pub fn init_command_logging() {
    install(None, Logs::Command);
}

/// Where logs go and what is logged by default.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Logs {
    /// Standard output, `info`.
    Service,
    /// Standard error, `warn`.
    Command,
}

/// Installs the log layer and, with a tracer, the span layer; false when a
/// subscriber was installed before (tests, the local launcher), which is kept.
fn install(tracer: Option<opentelemetry_sdk::trace::SdkTracer>, logs: Logs) -> bool {
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

fn build_provider(export: Export) -> anyhow::Result<SdkTracerProvider> {
    let _ = SAMPLER.set(export.sampler.clone());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(export.protocol)
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !export.service_name.is_empty() {
        resource = resource.with_service_name(export.service_name);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(FollowLinks(export.sampler))
        .with_resource(resource.build())
        .build())
}

/// Writes JSON log lines with the current span's `trace_id` and `span_id`
/// first, when there is one.
struct WithTraceIds<F>(F);

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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Option<Export>, ConfigError> {
        let vars: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        export_settings(move |name| vars.get(name).cloned(), "eventpipe-test")
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint_or_when_disabled() {
        assert!(settings(&[]).unwrap().is_none());
        assert!(
            settings(&[
                ("OTEL_SERVICE_NAME", "x"),
                ("OTEL_TRACES_SAMPLER", "always_on")
            ])
            .unwrap()
            .is_none()
        );
        let disabled = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ];
        assert!(settings(&disabled).unwrap().is_none());
    }

    #[test]
    fn an_endpoint_turns_export_on_with_the_defaults() {
        let export = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(export.service_name, "eventpipe-test");
        assert_eq!(export.protocol, Protocol::HttpBinary);
        assert!(matches!(export.sampler, Sampler::ParentBased(_)));
        let named = settings(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c/v1/traces"),
            ("OTEL_SERVICE_NAME", "ingest"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(named.service_name, "ingest");
        assert_eq!(named.protocol, Protocol::HttpJson);
        assert!(matches!(named.sampler, Sampler::TraceIdRatioBased(r) if r == 0.01));
    }

    #[test]
    fn an_unusable_value_is_named() {
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        for (var, value, says) in [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "collector:4318",
                "not an http",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "use http/protobuf"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "not a protocol"),
            ("OTEL_TRACES_SAMPLER", "sometimes", "not a sampler"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5", "between 0 and 1"),
            ("OTEL_TRACES_SAMPLER_ARG", "lots", "cannot use"),
        ] {
            let pairs = if var == on.0 {
                vec![(var, value)]
            } else {
                vec![on, (var, value)]
            };
            let error = settings(&pairs).unwrap_err();
            assert_eq!(error.var, var);
            assert!(error.message.contains(says), "{var}={value}: {error}");
        }
    }

    #[test]
    fn trace_headers_round_trip_and_a_malformed_one_is_ignored() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceHeaders::parse(header, Some("vendor=x")).unwrap();
        assert!(context.is_sampled());
        let back = TraceHeaders::of(&context).unwrap();
        assert_eq!(back.traceparent, header);
        assert_eq!(back.tracestate.as_deref(), Some("vendor=x"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceHeaders::parse(bad, None).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_root_linked_to_a_sampled_span_is_sampled_whatever_the_ratio() {
        let sampler = FollowLinks(Sampler::TraceIdRatioBased(0.0));
        let sampled = TraceHeaders::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        )
        .unwrap();
        let unsampled = TraceHeaders::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        )
        .unwrap();
        let decide = |links: Vec<Link>| {
            sampler
                .should_sample(
                    None,
                    TraceId::from_bytes([7; 16]),
                    "batch",
                    &SpanKind::Consumer,
                    &[],
                    &links,
                )
                .decision
        };
        assert_eq!(
            decide(vec![Link::with_context(unsampled.clone())]),
            SamplingDecision::Drop
        );
        assert_eq!(
            decide(vec![
                Link::with_context(unsampled),
                Link::with_context(sampled)
            ]),
            SamplingDecision::RecordAndSample
        );
    }
}
