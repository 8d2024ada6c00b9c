//! Stored traces → OTLP spans (`opentelemetry-proto`), with the attributes of DESIGN §6: Langfuse's
//! `langfuse.*` keys, OpenTelemetry GenAI semantic conventions (`gen_ai.*`) and OpenInference (what Arize
//! Phoenix reads). Historical spans carry their own ids and start/end times from the agent's files, so a
//! re-export replaces rather than duplicates.
//!
//! Sources of the attribute contract: `../shared/formats/langfuse.md` §2 (Langfuse server mapping), the
//! Langfuse Python SDK 5.0.4 reference spans (`../shared/oracles/langfuse/`), the OpenTelemetry GenAI semantic
//! conventions, and the OpenInference spec (`Arize-ai/openinference`, `spec/semantic_conventions.md`).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use serde_json::json;

use super::langfuse;
use crate::model::{pico_to_usd, Kind, Level};
use crate::store::outbox::{ExportObservation, ExportTrace};

/// What every exported span and the resource carry besides the trace's own data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportSettings {
    /// `service.name` (`OTEL_SERVICE_NAME`, default `tokentrace`).
    pub service_name: String,
    /// `langfuse.environment` / `deployment.environment.name` (`LANGFUSE_ENVIRONMENT`).
    pub environment: Option<String>,
    /// `langfuse.release` (`LANGFUSE_RELEASE`).
    pub release: Option<String>,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: Vec<(String, String)>,
    /// Tags added to every trace (`TOKENTRACE_TAGS`).
    pub tags: Vec<String>,
    /// Emit OpenInference `input.value` / `output.value` (off for Langfuse, which reads
    /// `langfuse.observation.input/output` and would otherwise store content twice).
    pub content_values: bool,
}

// `..Default::default()` keeps this compiling when opentelemetry-proto adds fields (it does between releases).
#[allow(clippy::needless_update)]
fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn i(key: &str, value: u64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value as i64))
}

fn f(key: &str, value: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(value))
}

fn b(key: &str, value: bool) -> KeyValue {
    kv(key, any_value::Value::BoolValue(value))
}

fn strings(key: &str, values: &[String]) -> KeyValue {
    let values = values
        .iter()
        .map(|v| AnyValue {
            value: Some(any_value::Value::StringValue(v.clone())),
        })
        .collect();
    kv(key, any_value::Value::ArrayValue(ArrayValue { values }))
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|k| u8::from_str_radix(&hex[2 * k..2 * k + 2], 16).ok())
        .collect()
}

fn nanos(ms: i64) -> u64 {
    (ms.max(0) as u64) * 1_000_000
}

/// Content as Langfuse expects it: a JSON text. Stored JSON (tool arguments) is sent as is, plain text as
/// a JSON string.
fn json_text(text: &str) -> String {
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde_json::Value>(text).is_ok()
    {
        text.to_string()
    } else {
        serde_json::Value::String(text.to_string()).to_string()
    }
}

/// The trace's tags: the agent, the channel, and the configured tags; sorted, without duplicates.
pub fn trace_tags(trace: &ExportTrace, settings: &ExportSettings) -> Vec<String> {
    let mut tags = vec![trace.session.agent.clone()];
    tags.extend(trace.session.channel.clone());
    tags.extend(settings.tags.iter().cloned());
    tags.sort();
    tags.dedup();
    tags
}

/// Attributes every span of a trace carries (Langfuse aggregates trace fields from any span).
fn common(trace: &ExportTrace, settings: &ExportSettings) -> Vec<KeyValue> {
    let sess = &trace.session;
    let mut attrs = vec![
        s("session.id", sess.session_id.clone()),
        s("gen_ai.conversation.id", sess.session_id.clone()),
        s(
            "langfuse.trace.name",
            trace
                .name
                .clone()
                .unwrap_or_else(|| format!("{} prompt", sess.agent)),
        ),
        strings("langfuse.trace.tags", &trace_tags(trace, settings)),
        s("tokentrace.agent", sess.agent.clone()),
    ];
    if let Some(u) = &sess.user {
        attrs.push(s("user.id", u.clone()));
    }
    if let Some(env) = &settings.environment {
        attrs.push(s("langfuse.environment", env.clone()));
    }
    if let Some(r) = &settings.release {
        attrs.push(s("langfuse.release", r.clone()));
    }
    if let Some(c) = &sess.channel {
        attrs.push(s("tokentrace.channel", c.clone()));
    }
    if let Some(p) = &sess.cwd {
        attrs.push(s("tokentrace.project", p.clone()));
    }
    if let Some(v) = &sess.agent_version {
        attrs.push(s("tokentrace.agent.version", v.clone()));
        // Langfuse's Version column: the agent's release (the resource's `service.version` stays ours).
        attrs.push(s("langfuse.version", v.clone()));
    }
    attrs
}

fn content(
    attrs: &mut Vec<KeyValue>,
    settings: &ExportSettings,
    input: Option<&str>,
    output: Option<&str>,
) {
    content_as(
        attrs,
        settings,
        input.map(json_text),
        output.map(json_text),
        input,
        output,
    );
}

/// Content with its Langfuse form (`langfuse_*`, JSON texts) and its OpenInference form (`text_*`, plain).
fn content_as(
    attrs: &mut Vec<KeyValue>,
    settings: &ExportSettings,
    langfuse_input: Option<String>,
    langfuse_output: Option<String>,
    text_input: Option<&str>,
    text_output: Option<&str>,
) {
    if let Some(json) = langfuse_input {
        attrs.push(s("langfuse.observation.input", json));
    }
    if let (Some(text), true) = (text_input, settings.content_values) {
        attrs.push(s("input.value", text));
        attrs.push(s("input.mime_type", "text/plain"));
    }
    if let Some(json) = langfuse_output {
        attrs.push(s("langfuse.observation.output", json));
    }
    if let (Some(text), true) = (text_output, settings.content_values) {
        attrs.push(s("output.value", text));
        attrs.push(s("output.mime_type", "text/plain"));
    }
}

/// All spans of one trace: the root `agent` span first, then the observations by start time.
pub fn trace_spans(trace: &ExportTrace, settings: &ExportSettings) -> Vec<Span> {
    let trace_id = hex_bytes(&trace.id);
    let root_id = hex_bytes(&trace.root_span_id);
    let base = common(trace, settings);
    let start = trace.start_ms.or(trace.session.start_ms).unwrap_or(0);
    let end = trace.end_ms.unwrap_or(start).max(start);

    let outcome = langfuse::root_outcome(trace);
    let mut root_attrs = base.clone();
    root_attrs.extend([
        s("langfuse.observation.type", "agent"),
        b("langfuse.internal.is_app_root", true),
        s("gen_ai.operation.name", "invoke_agent"),
        s("gen_ai.agent.name", trace.session.agent.clone()),
        s("openinference.span.kind", "AGENT"),
        strings("tag.tags", &trace_tags(trace, settings)),
    ]);
    content(
        &mut root_attrs,
        settings,
        trace.input.as_deref(),
        outcome.output.as_deref(),
    );
    let root_status = level_attributes(&mut root_attrs, outcome.level, outcome.status_message);
    let mut spans = vec![Span {
        trace_id: trace_id.clone(),
        span_id: root_id.clone(),
        name: trace.name.clone().unwrap_or_else(|| "invoke_agent".into()),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: nanos(start),
        end_time_unix_nano: nanos(end),
        attributes: root_attrs,
        status: root_status,
        events: anomaly_events(trace, start),
        ..Default::default()
    }];
    let messages = langfuse::generation_messages(trace);

    let known: std::collections::HashSet<&str> =
        trace.observations.iter().map(|o| o.id.as_str()).collect();
    for o in &trace.observations {
        let parent = o
            .parent_id
            .as_deref()
            .filter(|p| known.contains(p))
            .map(hex_bytes)
            .unwrap_or_else(|| root_id.clone());
        let o_start = o.start_ms.or(o.end_ms).unwrap_or(start);
        let o_end = o.end_ms.unwrap_or(o_start).max(o_start);
        let mut attrs = base.clone();
        let name = observation_attributes(o, settings, messages.get(&o.id), &mut attrs);
        let status = level_attributes(&mut attrs, o.level, langfuse::status_text(o));
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: hex_bytes(&o.id),
            parent_span_id: parent,
            name,
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(o_start),
            end_time_unix_nano: nanos(o_end),
            attributes: attrs,
            status,
            ..Default::default()
        });
    }
    spans
}

/// One `tokentrace.anomaly` event per runaway or budget anomaly reported on the trace, at the time it happened:
/// `tokentrace.anomaly.kind` (`repeated_tool_call`, `cost_window`, `model_calls`, `budget`), `.value` (calls in
/// a row, USD, model calls), `.limit` and `.message`. Only numbers and tool names: never arguments.
fn anomaly_events(trace: &ExportTrace, start: i64) -> Vec<span::Event> {
    trace
        .anomalies
        .iter()
        .map(|a| span::Event {
            time_unix_nano: nanos(a.at_ms.unwrap_or(start)),
            name: "tokentrace.anomaly".into(),
            attributes: vec![
                s("tokentrace.anomaly.kind", a.kind.clone()),
                KeyValue {
                    key: "tokentrace.anomaly.value".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::DoubleValue(a.value)),
                    }),
                },
                KeyValue {
                    key: "tokentrace.anomaly.limit".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::DoubleValue(a.limit)),
                    }),
                },
                s("tokentrace.anomaly.message", a.message.clone()),
            ],
            dropped_attributes_count: 0,
        })
        .collect()
}

/// Adds `langfuse.observation.level` / `.status_message` for a level other than DEFAULT; returns the span
/// status (ERROR with the message for an error).
fn level_attributes(
    attrs: &mut Vec<KeyValue>,
    level: Level,
    message: Option<String>,
) -> Option<Status> {
    if level == Level::Default {
        return None;
    }
    attrs.push(s("langfuse.observation.level", level.as_str()));
    if let Some(m) = &message {
        attrs.push(s("langfuse.observation.status_message", m.clone()));
    }
    (level == Level::Error).then(|| Status {
        code: status::StatusCode::Error as i32,
        message: message.unwrap_or_default(),
    })
}

/// Adds the kind-specific attributes; returns the span name. `messages` is a generation's chat-message input
/// and output ([`langfuse::generation_messages`]).
fn observation_attributes(
    o: &ExportObservation,
    settings: &ExportSettings,
    messages: Option<&(Option<String>, Option<String>)>,
    attrs: &mut Vec<KeyValue>,
) -> String {
    match o.kind {
        Kind::Generation => {
            let model = o.model.clone().unwrap_or_else(|| "unknown".into());
            let response_model = o.response_model.clone().unwrap_or_else(|| model.clone());
            attrs.extend([
                s("langfuse.observation.type", "generation"),
                s("gen_ai.operation.name", "chat"),
                s("gen_ai.request.model", model.clone()),
                s("gen_ai.response.model", response_model.clone()),
                s("langfuse.observation.model.name", response_model.clone()),
                s("openinference.span.kind", "LLM"),
                s("llm.model_name", response_model.clone()),
            ]);
            if let Some(p) = &o.provider {
                attrs.push(s("gen_ai.provider.name", p.clone()));
                attrs.push(s("llm.provider", p.clone()));
                attrs.push(s("llm.system", p.clone()));
            }
            if let Some(u) = o.usage {
                let prompt = u.prompt_tokens();
                attrs.extend([
                    s(
                        "langfuse.observation.usage_details",
                        langfuse::usage_json(&u, Some(response_model.as_str())),
                    ),
                    i("gen_ai.usage.input_tokens", prompt),
                    i("gen_ai.usage.output_tokens", u.output),
                    i("gen_ai.usage.cache_read.input_tokens", u.cache_read),
                    i("gen_ai.usage.cache_creation.input_tokens", u.cache_write()),
                    i("gen_ai.usage.reasoning.output_tokens", u.reasoning),
                    i("llm.token_count.prompt", prompt),
                    i("llm.token_count.completion", u.output),
                    i("llm.token_count.total", prompt + u.output),
                    i("llm.token_count.prompt_details.cache_read", u.cache_read),
                    i(
                        "llm.token_count.prompt_details.cache_write",
                        u.cache_write(),
                    ),
                    i("llm.token_count.completion_details.reasoning", u.reasoning),
                ]);
            }
            // Unpriced generations carry no cost: the backend may price them itself; never a silent $0.
            if let (Some(cost), Some(source)) = (o.cost, o.cost_source.as_deref()) {
                if source != "none" || cost.total != 0 {
                    let usd = pico_to_usd(cost.total);
                    attrs.push(s(
                        "langfuse.observation.cost_details",
                        langfuse::cost_json(
                            o.usage.as_ref(),
                            &cost,
                            o.provider.as_deref(),
                            Some(response_model.as_str()),
                        ),
                    ));
                    attrs.push(f("llm.cost.total", usd));
                    attrs.push(s("tokentrace.cost.source", source));
                }
            }
            if let Some(ms) = o.completion_start_ms {
                if let Ok(t) = jiff::Timestamp::from_millisecond(ms) {
                    attrs.push(s(
                        "langfuse.observation.completion_start_time",
                        json!(format!("{t:.3}")).to_string(),
                    ));
                }
            }
            if let Some(reason) = &o.finish_reason {
                attrs.push(strings(
                    "gen_ai.response.finish_reasons",
                    std::slice::from_ref(reason),
                ));
            }
            if let Some(id) = &o.response_id {
                attrs.push(s("gen_ai.response.id", id.clone()));
            }
            let (input, output) = messages.cloned().unwrap_or_default();
            content_as(
                attrs,
                settings,
                input,
                output,
                o.input.as_deref(),
                o.output.as_deref(),
            );
            format!("chat {model}")
        }
        Kind::Tool => {
            attrs.extend([
                s("langfuse.observation.type", "tool"),
                s("gen_ai.operation.name", "execute_tool"),
                s("gen_ai.tool.name", o.name.clone()),
                s("openinference.span.kind", "TOOL"),
                s("tool.name", o.name.clone()),
            ]);
            // The agent's own id (what the model's tool call and the result name), never our internal key.
            if let Some(id) = &o.tool_call_id {
                attrs.push(s("gen_ai.tool.call.id", id.clone()));
            }
            if let Some(args) = &o.input {
                attrs.push(s("gen_ai.tool.call.arguments", args.clone()));
                attrs.push(s("tool.parameters", args.clone()));
            }
            if let Some(result) = &o.output {
                attrs.push(s("gen_ai.tool.call.result", result.clone()));
            }
            content(attrs, settings, o.input.as_deref(), o.output.as_deref());
            format!("execute_tool {}", o.name)
        }
        Kind::Agent => {
            attrs.extend([
                s("langfuse.observation.type", "agent"),
                s("gen_ai.operation.name", "invoke_agent"),
                s("gen_ai.agent.name", o.name.clone()),
                s("openinference.span.kind", "AGENT"),
            ]);
            content(attrs, settings, o.input.as_deref(), o.output.as_deref());
            format!("invoke_agent {}", o.name)
        }
        Kind::Span => {
            attrs.extend([
                s("langfuse.observation.type", "span"),
                s("openinference.span.kind", "CHAIN"),
            ]);
            content(attrs, settings, o.input.as_deref(), o.output.as_deref());
            o.name.clone()
        }
        Kind::Event => {
            attrs.push(s("langfuse.observation.type", "event"));
            if let Some(m) = &o.metadata {
                attrs.push(s("langfuse.observation.metadata", m.to_string()));
            }
            content(attrs, settings, o.input.as_deref(), o.output.as_deref());
            o.name.clone()
        }
    }
}

/// One OTLP request from spans (one resource, one scope).
pub fn request(spans: Vec<Span>, settings: &ExportSettings) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(settings)),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The instrumentation scope of everything tokentrace exports.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "tokentrace".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// The resource of everything tokentrace exports: `service.name` (`OTEL_SERVICE_NAME`), our version, the
/// environment and `OTEL_RESOURCE_ATTRIBUTES`.
pub fn resource(settings: &ExportSettings) -> Resource {
    let mut resource = vec![
        s("service.name", settings.service_name.clone()),
        s("service.version", env!("CARGO_PKG_VERSION")),
        s("telemetry.sdk.name", "tokentrace"),
    ];
    if let Some(env) = &settings.environment {
        resource.push(s("deployment.environment.name", env.clone()));
    }
    for (k, v) in &settings.resource_attributes {
        if !resource.iter().any(|r| &r.key == k) {
            resource.push(s(k, v.clone()));
        }
    }
    Resource {
        attributes: resource,
        ..Default::default()
    }
}
