//! What Langfuse needs beyond plain OTLP, derived at export time from what the store holds (see
//! `docs/langfuse.md`):
//!
//! - [`usage_details`] / [`cost_details`]: `langfuse.observation.usage_details` and `.cost_details` under the
//!   key names Langfuse's own model prices use (`worker/src/constants/default-model-prices.json`; the
//!   entries tokentrace relies on are pinned in `data/langfuse-model-prices.json`), so that Langfuse prices
//!   every bucket when it computes a cost itself, and shows the breakdown when tokentrace sends one;
//! - [`generation_messages`]: each generation's input and output in the chat-message shape Langfuse renders
//!   (`{role, content, tool_calls}`), built from the trace's prompt, the generation's answer and its tool
//!   children, so that Langfuse's tool-call extraction works;
//! - [`root_outcome`]: the level, status message and shown output of a prompt that failed or was aborted;
//! - [`status_text`]: a status message for every WARNING / ERROR observation.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::model::{pico_to_usd, CostBreakdown, Kind, Level, Pico, Usage};
use crate::store::outbox::{ExportObservation, ExportTrace};

/// Uncached input tokens.
pub const INPUT: &str = "input";
/// Input tokens read from the prompt cache.
pub const CACHE_READ: &str = "input_cached_tokens";
/// Cache writes when the agent did not record (or the provider has no) 5m / 1h split.
pub const CACHE_WRITE: &str = "input_cache_creation";
/// Cache writes with the 5 minute lifetime (Anthropic).
pub const CACHE_WRITE_5M: &str = "input_cache_creation_5m";
/// Cache writes with the 1 hour lifetime (Anthropic).
pub const CACHE_WRITE_1H: &str = "input_cache_creation_1h";
/// Output tokens without reasoning.
pub const OUTPUT: &str = "output";
/// Reasoning output tokens (the name Langfuse's GenAI route derives; OpenAI entries price it).
pub const REASONING: &str = "output_reasoning_tokens";
/// Reasoning output tokens as Langfuse's Google (Gemini) entries price them: they have no
/// `output_reasoning_tokens` price, so a Gemini reasoning token sent under that name would cost $0.
pub const REASONING_GEMINI: &str = "output_reasoning";

/// Every usage key tokentrace sends to Langfuse.
pub const USAGE_KEYS: [&str; 8] = [
    INPUT,
    CACHE_READ,
    CACHE_WRITE,
    CACHE_WRITE_5M,
    CACHE_WRITE_1H,
    OUTPUT,
    REASONING,
    REASONING_GEMINI,
];

/// 1-hour over 5-minute cache-write price when the price table does not say (Anthropic: 2× vs 1.25× input).
const DEFAULT_1H_OVER_5M: f64 = 2.0 / 1.25;

fn model_lower(model: Option<&str>) -> String {
    model.unwrap_or("").to_ascii_lowercase()
}

/// True for Google's Gemini models (reasoning priced as [`REASONING_GEMINI`]).
fn is_gemini(model: &str) -> bool {
    model.contains("gemini")
}

/// True when cache writes go out split into 5m / 1h: the agent recorded a 1h part, or the model is
/// Anthropic's (whose cache writes are 5m unless a 1h part is recorded; Langfuse's Claude entries price
/// both keys). Other providers have one cache-write price, under [`CACHE_WRITE`].
fn split_cache_writes(u: &Usage, model: &str) -> bool {
    u.cache_write_1h > 0 || model.contains("claude")
}

fn reasoning_key(model: &str) -> &'static str {
    if is_gemini(model) {
        REASONING_GEMINI
    } else {
        REASONING
    }
}

/// `langfuse.observation.usage_details` of a generation, tokens per Langfuse key: `input` (uncached),
/// `input_cached_tokens`, `input_cache_creation_5m` + `_1h` (or `input_cache_creation`), `output` (without
/// reasoning) and the reasoning key. `input` and `output` are always present; the others only when non-zero.
pub fn usage_details(u: &Usage, model: Option<&str>) -> Vec<(&'static str, u64)> {
    let model = model_lower(model);
    let reasoning = u.reasoning.min(u.output);
    let mut out = vec![(INPUT, u.input)];
    if u.cache_read > 0 {
        out.push((CACHE_READ, u.cache_read));
    }
    if u.cache_write() > 0 {
        if split_cache_writes(u, &model) {
            if u.cache_write_5m > 0 {
                out.push((CACHE_WRITE_5M, u.cache_write_5m));
            }
            if u.cache_write_1h > 0 {
                out.push((CACHE_WRITE_1H, u.cache_write_1h));
            }
        } else {
            out.push((CACHE_WRITE, u.cache_write()));
        }
    }
    out.push((OUTPUT, u.output - reasoning));
    if reasoning > 0 {
        out.push((reasoning_key(&model), reasoning));
    }
    out
}

/// The 1h / 5m cache-write price ratio for `model` from the bundled table, else Anthropic's.
fn cache_write_ratio(provider: Option<&str>, model: Option<&str>) -> f64 {
    model
        .and_then(|m| crate::pricing::PriceTable::bundled().lookup(provider, m))
        .and_then(|m| Some((m.price.base.cache_write?, m.price.base.cache_write_1h?)))
        .filter(|(w5, w1)| *w5 > 0.0 && *w1 > 0.0)
        .map_or(DEFAULT_1H_OVER_5M, |(w5, w1)| w1 / w5)
}

/// `part` of `whole` in the proportion `num / den` (rounded; `whole` when `den` is 0).
fn share(whole: Pico, num: f64, den: f64) -> Pico {
    if den <= 0.0 {
        return whole;
    }
    (whole as f64 * (num / den)).round() as Pico
}

/// `langfuse.observation.cost_details` of a priced generation, pico-USD per usage key plus `total`: the same
/// keys as [`usage_details`]. Cache writes are split into 5m / 1h by tokens × their price ratio, output into
/// output / reasoning by tokens (reasoning is billed at the output price). The parts sum to `total` exactly
/// (in pico-USD): a difference between the agent's own total and its parts (rounding) is added to the
/// largest part.
pub fn cost_details(
    u: Option<&Usage>,
    c: &CostBreakdown,
    provider: Option<&str>,
    model: Option<&str>,
) -> Vec<(&'static str, Pico)> {
    let usage = u.copied().unwrap_or_default();
    let keys = usage_details(&usage, model);
    let has = |k: &str| keys.iter().any(|(key, _)| *key == k);
    let lower = model_lower(model);
    let mut out: Vec<(&'static str, Pico)> = vec![(INPUT, c.input)];
    if has(CACHE_READ) || c.cache_read != 0 {
        out.push((CACHE_READ, c.cache_read));
    }
    if has(CACHE_WRITE_5M) || has(CACHE_WRITE_1H) {
        let ratio = cache_write_ratio(provider, model);
        let w5 = usage.cache_write_5m as f64;
        let w1 = usage.cache_write_1h as f64 * ratio;
        let one_hour = share(c.cache_write, w1, w5 + w1);
        if has(CACHE_WRITE_5M) {
            out.push((CACHE_WRITE_5M, c.cache_write - one_hour));
        }
        if has(CACHE_WRITE_1H) {
            out.push((CACHE_WRITE_1H, one_hour));
        }
    } else if has(CACHE_WRITE) || c.cache_write != 0 {
        out.push((CACHE_WRITE, c.cache_write));
    }
    let reasoning_tokens = usage.reasoning.min(usage.output);
    let reasoning = if reasoning_tokens > 0 {
        share(c.output, reasoning_tokens as f64, usage.output as f64)
    } else {
        0
    };
    out.push((OUTPUT, c.output - reasoning));
    if reasoning_tokens > 0 {
        out.push((reasoning_key(&lower), reasoning));
    }
    let sum: Pico = out.iter().map(|(_, v)| *v).sum();
    if sum != c.total {
        let largest = out
            .iter()
            .enumerate()
            .max_by_key(|(i, (_, v))| (v.abs(), std::cmp::Reverse(*i)))
            .map_or(0, |(i, _)| i);
        out[largest].1 += c.total - sum;
    }
    out.push(("total", c.total));
    out
}

/// [`usage_details`] as the JSON text Langfuse reads.
pub fn usage_json(u: &Usage, model: Option<&str>) -> String {
    let map: Map<String, Value> = usage_details(u, model)
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Value::Object(map).to_string()
}

/// [`cost_details`] as the JSON text Langfuse reads (USD).
pub fn cost_json(
    u: Option<&Usage>,
    c: &CostBreakdown,
    provider: Option<&str>,
    model: Option<&str>,
) -> String {
    let map: Map<String, Value> = cost_details(u, c, provider, model)
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(pico_to_usd(v))))
        .collect();
    Value::Object(map).to_string()
}

/// The status message of a WARNING / ERROR observation: the recorded one, else the message or reason its
/// metadata names, else a plain description (`aborted by the user` for an aborted model call, DESIGN §3).
/// `None` for other levels.
pub fn status_text(o: &ExportObservation) -> Option<String> {
    if !matches!(o.level, Level::Warning | Level::Error) {
        return None;
    }
    if let Some(m) = o.status_message.as_deref().filter(|m| !m.trim().is_empty()) {
        return Some(m.to_string());
    }
    let meta = |k: &str| {
        o.metadata
            .as_ref()
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    if let Some(m) = meta("message").or_else(|| meta("error")) {
        return Some(m);
    }
    Some(match (o.kind, o.level) {
        (Kind::Generation, Level::Warning) => "aborted by the user".to_string(),
        (Kind::Generation, _) => "model call failed".to_string(),
        (Kind::Tool, _) => "tool call failed".to_string(),
        (_, Level::Warning) => match meta("reason") {
            Some(r) if r == "interrupted" => "aborted by the user".to_string(),
            Some(r) => format!("{} ({r})", o.name),
            None => format!("{} (warning)", o.name),
        },
        _ => format!("{} (error)", o.name),
    })
}

/// How a prompt ended, as the trace root shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RootOutcome {
    pub level: Level,
    pub status_message: Option<String>,
    /// What the user saw when the prompt has no final answer: the partial answer, else the error.
    pub output: Option<String>,
}

/// The id of the nearest `agent` observation above `o` (a subagent), or `None` for the main agent.
fn scope_of<'a>(
    o: &'a ExportObservation,
    by_id: &HashMap<&str, &'a ExportObservation>,
) -> Option<&'a str> {
    let mut parent = o.parent_id.as_deref();
    let mut hops = 0;
    while let Some(p) = parent {
        let obs = by_id.get(p)?;
        if obs.kind == Kind::Agent {
            return Some(obs.id.as_str());
        }
        parent = obs.parent_id.as_deref();
        hops += 1;
        if hops > 1000 {
            return None;
        }
    }
    None
}

/// The level of the trace root: ERROR / WARNING when the main agent's last model call (or a later warning
/// / error marker such as Codex's `turn_aborted`) failed or was aborted, with its status message; the shown
/// output is the trace's final answer, else that call's partial answer, else the status message.
pub fn root_outcome(trace: &ExportTrace) -> RootOutcome {
    let by_id: HashMap<&str, &ExportObservation> = trace
        .observations
        .iter()
        .map(|o| (o.id.as_str(), o))
        .collect();
    let last = trace.observations.iter().rev().find(|o| {
        scope_of(o, &by_id).is_none()
            && (o.kind == Kind::Generation
                || (o.kind == Kind::Event && matches!(o.level, Level::Warning | Level::Error)))
    });
    let Some(last) = last.filter(|o| matches!(o.level, Level::Warning | Level::Error)) else {
        return RootOutcome {
            level: Level::Default,
            status_message: None,
            output: trace.output.clone(),
        };
    };
    let status = status_text(last);
    let partial = trace
        .observations
        .iter()
        .rev()
        .find(|o| {
            o.kind == Kind::Generation
                && scope_of(o, &by_id).is_none()
                && o.start_ms <= last.start_ms
        })
        .and_then(|g| g.output.clone());
    RootOutcome {
        level: last.level,
        output: trace.output.clone().or(partial).or_else(|| status.clone()),
        status_message: status,
    }
}

/// Content chars of the messages of one generation input, beyond which further messages are left out (with
/// a marker): each stored field is already capped (20,000 chars by default), a generation fed by many tool
/// results is capped as a whole.
pub const MAX_INPUT_CHARS: usize = 100_000;

/// Chat-message input and output of every generation of a trace, by observation id, as JSON texts:
/// input = the prompt (`[{role: user, content}]`) for the first call of the main agent or of a subagent,
/// the results of the previous call's tools (`[{role: tool, tool_call_id, name, content}]`) for later ones,
/// or the previous call's input when it asked for no tool (a retry); output = `{role: assistant, content,
/// tool_calls: [{id, type: function, function: {name, arguments}}]}`. Only what the store kept (the capture
/// policy decided) goes in; a message with nothing to show is left out.
pub fn generation_messages(
    trace: &ExportTrace,
) -> HashMap<String, (Option<String>, Option<String>)> {
    let by_id: HashMap<&str, &ExportObservation> = trace
        .observations
        .iter()
        .map(|o| (o.id.as_str(), o))
        .collect();
    let mut tools_of: HashMap<&str, Vec<&ExportObservation>> = HashMap::new();
    for o in trace.observations.iter().filter(|o| o.kind == Kind::Tool) {
        if let Some(p) = o.parent_id.as_deref() {
            tools_of.entry(p).or_default().push(o);
        }
    }
    // Per scope: the previous generation and its input messages.
    let mut previous: HashMap<Option<&str>, (&ExportObservation, Option<Vec<Value>>)> =
        HashMap::new();
    let mut out = HashMap::new();
    for g in trace
        .observations
        .iter()
        .filter(|o| o.kind == Kind::Generation)
    {
        let scope = scope_of(g, &by_id);
        let input: Option<Vec<Value>> = match previous.get(&scope) {
            Some((prev, prev_input)) => match tools_of.get(prev.id.as_str()) {
                Some(tools) => {
                    let msgs: Vec<Value> = tools
                        .iter()
                        .filter_map(|t| {
                            let content = t.output.as_ref()?;
                            let mut m =
                                json!({ "role": "tool", "content": content, "name": t.name });
                            if let Some(id) = &t.tool_call_id {
                                m["tool_call_id"] = json!(id);
                            }
                            Some(m)
                        })
                        .collect();
                    (!msgs.is_empty()).then_some(msgs)
                }
                None => prev_input.clone(),
            },
            None => {
                let prompt = match scope {
                    None => trace.input.as_ref(),
                    Some(agent) => by_id.get(agent).and_then(|a| a.input.as_ref()),
                };
                prompt.map(|p| vec![json!({ "role": "user", "content": p })])
            }
        };
        let input_text = input.as_ref().map(|msgs| cap_messages(msgs));
        let tool_calls: Vec<Value> = tools_of
            .get(g.id.as_str())
            .map(|tools| {
                tools
                    .iter()
                    .map(|t| {
                        let mut call = json!({
                            "type": "function",
                            "function": { "name": t.name },
                        });
                        if let Some(id) = &t.tool_call_id {
                            call["id"] = json!(id);
                        }
                        if let Some(args) = &t.input {
                            call["function"]["arguments"] = json!(args);
                        }
                        call
                    })
                    .collect()
            })
            .unwrap_or_default();
        let output = if g.output.is_some() || !tool_calls.is_empty() {
            let mut m =
                json!({ "role": "assistant", "content": g.output.clone().unwrap_or_default() });
            if !tool_calls.is_empty() {
                m["tool_calls"] = Value::Array(tool_calls);
            }
            Some(m.to_string())
        } else {
            None
        };
        out.insert(g.id.clone(), (input_text, output));
        previous.insert(scope, (g, input));
    }
    out
}

/// The messages as JSON text, leaving out those past [`MAX_INPUT_CHARS`] of content (a last message says how
/// many).
fn cap_messages(msgs: &[Value]) -> String {
    let mut kept = Vec::new();
    let mut chars = 0usize;
    for (i, m) in msgs.iter().enumerate() {
        let len = m["content"].as_str().map_or(0, |s| s.chars().count());
        if chars + len > MAX_INPUT_CHARS && !kept.is_empty() {
            kept.push(json!({
                "role": "tool",
                "content": format!("[{} more tool results left out: over {MAX_INPUT_CHARS} chars]", msgs.len() - i),
            }));
            break;
        }
        chars += len;
        kept.push(m.clone());
    }
    Value::Array(kept).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(input: u64, output: u64, cr: u64, w5: u64, w1: u64, reasoning: u64) -> Usage {
        Usage {
            input,
            output,
            cache_read: cr,
            cache_write_5m: w5,
            cache_write_1h: w1,
            reasoning,
        }
    }

    #[test]
    fn usage_keys_follow_langfuse_prices() {
        let claude = usage_details(&u(10, 100, 1000, 300, 200, 0), Some("claude-opus-4-8"));
        assert_eq!(
            claude,
            vec![
                (INPUT, 10),
                (CACHE_READ, 1000),
                (CACHE_WRITE_5M, 300),
                (CACHE_WRITE_1H, 200),
                (OUTPUT, 100)
            ]
        );
        let openai = usage_details(&u(10, 100, 1000, 300, 0, 40), Some("gpt-5.4"));
        assert_eq!(
            openai,
            vec![
                (INPUT, 10),
                (CACHE_READ, 1000),
                (CACHE_WRITE, 300),
                (OUTPUT, 60),
                (REASONING, 40)
            ]
        );
        let gemini = usage_details(&u(10, 100, 0, 0, 0, 40), Some("gemini-3-pro-preview"));
        assert_eq!(
            gemini,
            vec![(INPUT, 10), (OUTPUT, 60), (REASONING_GEMINI, 40)]
        );
    }

    #[test]
    fn cost_parts_sum_to_the_total() {
        let usage = u(10, 100, 1000, 300, 200, 30);
        let c = CostBreakdown {
            input: 7,
            output: 1001,
            cache_read: 333,
            cache_write: 2_000_003,
            total: 2_001_350, // 6 pico more than the parts (an agent's rounding)
        };
        let parts = cost_details(
            Some(&usage),
            &c,
            Some("anthropic"),
            Some("claude-sonnet-4-5"),
        );
        let total = parts.iter().find(|(k, _)| *k == "total").unwrap().1;
        let sum: Pico = parts
            .iter()
            .filter(|(k, _)| *k != "total")
            .map(|(_, v)| v)
            .sum();
        assert_eq!((sum, total), (c.total, c.total));
        let get = |k: &str| parts.iter().find(|(key, _)| *key == k).unwrap().1;
        // 300 × 3.75 vs 200 × 6 (per Mtok): the 1h part is 1200 / 2325 of the cache-write cost.
        // (The agent's 6 pico of rounding went to the largest part, this one.)
        let expected_1h = (2_000_003f64 * 1200.0 / 2325.0).round() as Pico;
        assert_eq!(get(CACHE_WRITE_1H), expected_1h + 6);
        assert_eq!(get(CACHE_WRITE_5M), 2_000_003 - expected_1h);
        assert_eq!(get(REASONING), (1001f64 * 0.3).round() as Pico);
        assert_eq!(get(OUTPUT), 1001 - get(REASONING));
    }
}
