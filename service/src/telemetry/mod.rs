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
//!
//! One job per file: [`settings`] reads the variables, [`sampling`]
//! decides which spans are made and kept, [`logs`] formats and routes log
//! lines, [`propagation`] carries context across Kafka; this file starts
//! and stops it all ([`init`], [`Telemetry`]).

mod logs;
mod propagation;
mod sampling;
mod settings;

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;

pub use opentelemetry::KeyValue;
pub use opentelemetry::trace::{SpanContext, Status};
pub use propagation::{TRACEPARENT, TRACESTATE, TraceHeaders, remote_parent, span_context};
pub use sampling::{decided, enabled, sampled, trace_request};
pub use settings::{Export, VARS, export_settings};
pub use tracing_opentelemetry::OpenTelemetrySpanExt;

use logs::{Logs, install};
use sampling::{ENABLED, FollowLinks, SAMPLER};

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

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Link, SpanKind, TraceId};
    use opentelemetry_otlp::Protocol;
    use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};

    use super::*;
    use crate::settings::ConfigError;

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
