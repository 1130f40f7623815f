//! What trace export is configured to do: the standard OpenTelemetry
//! variables ([`VARS`]) read into an [`Export`], or nothing.

use opentelemetry_otlp::Protocol;
use opentelemetry_sdk::trace::Sampler;

use crate::settings::{ConfigError, Env, Var, var};

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
