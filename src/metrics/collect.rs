//! The metric set, computed from the store: every value is a sum over what is stored, so a restart, a
//! re-import or a second scrape never counts anything twice (cumulative since the first stored record).
//!
//! Names and units follow the OpenTelemetry GenAI semantic conventions (`gen_ai.client.token.usage`,
//! `gen_ai.client.operation.duration`, the `gen_ai.client.inference.usage.*` counters) plus tokentrace's own
//! (`tokentrace.*`); labels are agent, model, provider, token type, tool name, channel and user — never a session
//! or trace id (one series per session would grow without bound).

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;

use crate::store::read::{FactKind, Filter};
use crate::store::Store;

/// Bucket bounds of `gen_ai.client.token.usage` ({token}), from the GenAI metrics conventions.
pub const TOKEN_BOUNDS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Bucket bounds of durations in seconds (`gen_ai.client.operation.duration`, tool durations), from the GenAI
/// metrics conventions.
pub const SECONDS_BOUNDS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// Bucket bounds of session durations in seconds (a minute to a day).
pub const SESSION_BOUNDS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];

/// A counter or a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Histogram(&'static [f64]),
}

/// Sorted label pairs (OpenTelemetry attribute names; the exposition translates them).
pub type Labels = Vec<(&'static str, String)>;

/// The value of one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Counter(f64),
    /// Per-bucket counts (not cumulative; one more than the bounds: the overflow bucket), sum and count.
    Histogram {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

/// One metric: its OpenTelemetry name, unit (UCUM, `{…}` annotations for counts), description and series.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub unit: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub series: BTreeMap<Labels, Value>,
    /// When each series' first measurement happened (ms since the epoch): the stable start time of its
    /// cumulative value (OTLP `start_time_unix_nano`), the same after every restart.
    pub starts: BTreeMap<Labels, i64>,
}

impl Family {
    fn new(name: &'static str, unit: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            unit,
            help,
            kind,
            series: BTreeMap::new(),
            starts: BTreeMap::new(),
        }
    }

    /// Notes a measurement at `at_ms` of the series `labels` (keeps the earliest).
    pub fn seen_at(&mut self, labels: &Labels, at_ms: i64) {
        match self.starts.get_mut(labels) {
            Some(t) => *t = (*t).min(at_ms),
            None => {
                self.starts.insert(labels.clone(), at_ms);
            }
        }
    }

    /// Adds one measurement: to a counter's value, or as one observation of a histogram.
    pub fn add(&mut self, labels: &Labels, v: f64) {
        match self.kind {
            Kind::Counter => {
                let e = self
                    .series
                    .entry(labels.clone())
                    .or_insert(Value::Counter(0.0));
                if let Value::Counter(c) = e {
                    *c += v;
                }
            }
            Kind::Histogram(bounds) => {
                let e = self
                    .series
                    .entry(labels.clone())
                    .or_insert_with(|| Value::Histogram {
                        counts: vec![0; bounds.len() + 1],
                        sum: 0.0,
                        count: 0,
                    });
                if let Value::Histogram { counts, sum, count } = e {
                    let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
                    counts[i] += 1;
                    *sum += v;
                    *count += 1;
                }
            }
        }
    }
}

/// Every metric tokentrace exports, in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub families: Vec<Family>,
}

impl Snapshot {
    /// The family named `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }
}

/// Indexes of the families in [`Snapshot::families`].
const INPUT: usize = 0;
const OUTPUT: usize = 1;
const CACHE_READ: usize = 2;
const CACHE_WRITE: usize = 3;
const REASONING: usize = 4;
const TOKEN_USAGE: usize = 5;
const DURATION: usize = 6;
const COST: usize = 7;
const PROMPTS: usize = 8;
const GENERATIONS: usize = 9;
const GENERATION_ERRORS: usize = 10;
const TOOL_CALLS: usize = 11;
const TOOL_ERRORS: usize = 12;
const TOOL_DURATION: usize = 13;
const SESSIONS: usize = 14;
const SESSION_DURATION: usize = 15;
const CC_TOKENS: usize = 16;
const CC_COST: usize = 17;
const CC_SESSIONS: usize = 18;
const PI_TOKENS_INPUT: usize = 19;
const PI_TOKENS_OUTPUT: usize = 20;
const PI_PROMPTS: usize = 21;
const PI_TURNS: usize = 22;
const PI_TOOL_CALLS: usize = 23;
const PI_TOOL_ERRORS: usize = 24;
const PI_TOOL_DURATION: usize = 25;
const PI_SESSION_DURATION: usize = 26;
const CODEX_TOKENS: usize = 27;

/// Agents whose sessions also get the `pi.*` names: pi and its fork oh-my-pi.
const PI_AGENTS: &[&str] = &["pi", "omp"];

/// Every family, without series, in the order [`Snapshot::families`] lists them.
pub fn families() -> Vec<Family> {
    use Kind::{Counter, Histogram};
    vec![
        Family::new(
            "gen_ai.client.inference.usage.input_tokens",
            "{token}",
            Counter,
            "Input tokens of model calls, cache reads and writes included",
        ),
        Family::new(
            "gen_ai.client.inference.usage.output_tokens",
            "{token}",
            Counter,
            "Output tokens of model calls, reasoning included",
        ),
        Family::new(
            "gen_ai.client.inference.usage.cache_read.input_tokens",
            "{token}",
            Counter,
            "Input tokens read from the provider's prompt cache",
        ),
        Family::new(
            "gen_ai.client.inference.usage.cache_write.input_tokens",
            "{token}",
            Counter,
            "Input tokens written to the provider's prompt cache",
        ),
        Family::new(
            "gen_ai.client.inference.usage.reasoning.output_tokens",
            "{token}",
            Counter,
            "Output tokens spent on reasoning",
        ),
        Family::new(
            "gen_ai.client.token.usage",
            "{token}",
            Histogram(TOKEN_BOUNDS),
            "Tokens per model call, by gen_ai.token.type (input includes cache)",
        ),
        Family::new(
            "gen_ai.client.operation.duration",
            "s",
            Histogram(SECONDS_BOUNDS),
            "Duration of model calls",
        ),
        Family::new(
            "tokentrace.cost.usage",
            "USD",
            Counter,
            "Cost of model calls in USD (the agent's figure, else the bundled price table)",
        ),
        Family::new("tokentrace.prompts", "{prompt}", Counter, "User prompts"),
        Family::new(
            "tokentrace.generations",
            "{call}",
            Counter,
            "Model calls, failed ones included",
        ),
        Family::new(
            "tokentrace.generation.errors",
            "{call}",
            Counter,
            "Model calls that failed",
        ),
        Family::new("tokentrace.tool.calls", "{call}", Counter, "Tool calls"),
        Family::new(
            "tokentrace.tool.errors",
            "{call}",
            Counter,
            "Tool calls that failed",
        ),
        Family::new(
            "tokentrace.tool.duration",
            "s",
            Histogram(SECONDS_BOUNDS),
            "Duration of tool calls",
        ),
        Family::new(
            "tokentrace.sessions",
            "{session}",
            Counter,
            "Agent sessions",
        ),
        Family::new(
            "tokentrace.session.duration",
            "s",
            Histogram(SESSION_BOUNDS),
            "Duration of agent sessions, first to last record",
        ),
        // `--metrics-compat claude_code`: Claude Code's own instruments (its monitoring documentation), for
        // Claude Code sessions only, so that boards built on them show the history too. Empty otherwise.
        Family::new(
            "claude_code.token.usage",
            "tokens",
            Counter,
            "Claude Code tokens by type (input, output, cacheRead, cacheCreation), as Claude Code's telemetry names them",
        ),
        Family::new(
            "claude_code.cost.usage",
            "USD",
            Counter,
            "Claude Code cost in USD, as Claude Code's telemetry names it",
        ),
        Family::new(
            "claude_code.session.count",
            "{session}",
            Counter,
            "Claude Code sessions, as Claude Code's telemetry names them",
        ),
        // pi and oh-my-pi sessions also under the names of the pi-otel-telemetry extension (DESIGN §6), so that
        // its Grafana dashboard shows them: label `model` on tokens and turns, `tool` on tool series.
        Family::new(
            "pi.tokens.input",
            "{token}",
            Counter,
            "pi input tokens, cache reads and writes included",
        ),
        Family::new("pi.tokens.output", "{token}", Counter, "pi output tokens"),
        Family::new("pi.prompts", "{prompt}", Counter, "pi user prompts"),
        Family::new(
            "pi.turns",
            "{turn}",
            Counter,
            "pi turns (one model response and the tools it asked for)",
        ),
        Family::new("pi.tool.calls", "{call}", Counter, "pi tool calls"),
        Family::new("pi.tool.errors", "{call}", Counter, "pi tool calls that failed"),
        Family::new(
            "pi.tool.duration",
            "s",
            Histogram(SECONDS_BOUNDS),
            "Duration of pi tool calls",
        ),
        Family::new(
            "pi.session.duration",
            "s",
            Histogram(SESSION_BOUNDS),
            "Duration of pi sessions, first to last record",
        ),
        // `--metrics-compat codex`: Codex's own token instrument for Codex sessions, labels `model` and
        // `token_type` (input includes cached input, output includes reasoning, total = input + output). One
        // observation per model call (Codex observes once per turn: the sums agree, the counts do not).
        Family::new(
            "codex.turn.token_usage",
            "{token}",
            Histogram(TOKEN_BOUNDS),
            "Codex tokens by token_type (input, cached_input, output, reasoning_output, total), as Codex's telemetry names them",
        ),
    ]
}

/// Extra metric names for dashboards built on an agent's own telemetry (`--metrics-compat`,
/// `metrics_compat` in the config, `TOKENTRACE_METRICS_COMPAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Compat {
    /// Claude Code's `claude_code.token.usage{type,model}`, `claude_code.cost.usage{model}` and
    /// `claude_code.session.count` for Claude Code sessions (Prometheus: `claude_code_token_usage_tokens_total`,
    /// `claude_code_cost_usage_USD_total`, `claude_code_session_count_total`).
    pub claude_code: bool,
    /// Codex's `codex.turn.token_usage{model,token_type}` for Codex sessions (Prometheus:
    /// `codex_turn_token_usage_sum`, `_count`, `_bucket`).
    pub codex: bool,
    /// Not a name set: label every series of a session with `tokentrace.project`, the last component of its
    /// working directory (config `metrics_project_label`; one series per project, so off by default).
    pub project: bool,
}

impl Compat {
    /// From names (`claude_code`). Errors: an unknown name.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Compat> {
        let mut compat = Compat::default();
        for name in names {
            match name.as_ref().trim() {
                "claude_code" => compat.claude_code = true,
                "codex" => compat.codex = true,
                "" => {}
                other => {
                    anyhow::bail!(
                        "unknown metrics compatibility '{other}': expected claude_code or codex"
                    )
                }
            }
        }
        Ok(compat)
    }
}

/// Pushes `(name, value)` when the value is known.
fn push(labels: &mut Labels, name: &'static str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        labels.push((name, v.to_string()));
    }
}

/// The session attributes every series of a session carries.
struct SessionLabels {
    agent: String,
    channel: Option<String>,
    user: Option<String>,
    /// With [`Compat::project`] only.
    project: Option<String>,
}

impl SessionLabels {
    fn labels(&self) -> Labels {
        let mut l = Labels::new();
        push(&mut l, "tokentrace.agent", Some(&self.agent));
        push(&mut l, "tokentrace.channel", self.channel.as_deref());
        push(&mut l, "tokentrace.project", self.project.as_deref());
        push(&mut l, "user.id", self.user.as_deref());
        l.sort();
        l
    }

    fn is_pi(&self) -> bool {
        PI_AGENTS.contains(&self.agent.as_str())
    }
}

/// Computes every metric from the store (all sessions). Errors: the store cannot be read.
pub fn collect(store: &Store, compat: Compat) -> Result<Snapshot> {
    let mut families = families();
    for_each_sample(store, compat, |at, family, labels, value| {
        families[family].add(labels, value);
        if let Some(at) = at {
            families[family].seen_at(labels, at);
        }
    })?;
    Ok(Snapshot { families })
}

/// Calls `each(time, family, labels, value)` for every measurement the store holds: `family` indexes
/// [`families`], `time` (ms since the epoch) is when it happened — a model or tool call's start, a prompt's
/// start, a session's start (its count) and end (its duration) — `None` when the files did not say.
/// [`collect`] sums them; the backfill export sums them up to each step.
pub fn for_each_sample(
    store: &Store,
    compat: Compat,
    mut each: impl FnMut(Option<i64>, usize, &Labels, f64),
) -> Result<()> {
    let sessions = store.sessions(&Filter::default())?;
    let mut by_key: HashMap<String, SessionLabels> = HashMap::with_capacity(sessions.len());
    for s in sessions {
        let labels = SessionLabels {
            agent: s.agent.clone(),
            channel: s.channel.clone(),
            user: s.user.clone(),
            project: s
                .cwd
                .as_deref()
                .filter(|_| compat.project)
                .and_then(|c| std::path::Path::new(c).file_name())
                .map(|n| n.to_string_lossy().into_owned()),
        };
        let l = labels.labels();
        each(s.start_ms, SESSIONS, &l, 1.0);
        if compat.claude_code && s.agent == "claude" {
            each(s.start_ms, CC_SESSIONS, &Labels::new(), 1.0);
        }
        if let (Some(start), Some(end)) = (s.start_ms, s.end_ms) {
            let secs = (end - start).max(0) as f64 / 1000.0;
            each(Some(end), SESSION_DURATION, &l, secs);
            if labels.is_pi() {
                each(Some(end), PI_SESSION_DURATION, &Labels::new(), secs);
            }
        }
        by_key.insert(s.key, labels);
    }
    store.for_each_fact(
        |key| by_key.contains_key(key),
        |fact| {
            let Some(session) = by_key.get(&fact.session_key) else {
                return;
            };
            let at = fact.ts_ms;
            if compat.claude_code && session.agent == "claude" && fact.kind == FactKind::Generation
            {
                let u = fact.usage;
                let model = ("model", fact.name.clone());
                for (kind, n) in [
                    ("input", u.input),
                    ("output", u.output),
                    ("cacheRead", u.cache_read),
                    ("cacheCreation", u.cache_write()),
                ] {
                    each(
                        at,
                        CC_TOKENS,
                        &vec![model.clone(), ("type", kind.into())],
                        n as f64,
                    );
                }
                each(at, CC_COST, &vec![model], fact.cost_pico as f64 / 1e12);
            }
            if session.is_pi() {
                pi_sample(fact, at, &mut each);
            }
            if compat.codex && session.agent == "codex" && fact.kind == FactKind::Generation {
                let u = fact.usage;
                for (kind, n) in [
                    ("input", u.prompt_tokens()),
                    ("cached_input", u.cache_read),
                    ("output", u.output),
                    ("reasoning_output", u.reasoning),
                    ("total", u.prompt_tokens() + u.output),
                ] {
                    let l: Labels = vec![("model", fact.name.clone()), ("token_type", kind.into())];
                    each(at, CODEX_TOKENS, &l, n as f64);
                }
            }
            let mut l = session.labels();
            match fact.kind {
                FactKind::Prompt => each(at, PROMPTS, &l, 1.0),
                FactKind::Generation => {
                    push(&mut l, "gen_ai.operation.name", Some("chat"));
                    push(&mut l, "gen_ai.provider.name", fact.provider.as_deref());
                    // The model as the report names it (the response's, else the request's).
                    push(&mut l, "gen_ai.response.model", Some(&fact.name));
                    l.sort();
                    let u = fact.usage;
                    each(at, INPUT, &l, u.prompt_tokens() as f64);
                    each(at, OUTPUT, &l, u.output as f64);
                    each(at, CACHE_READ, &l, u.cache_read as f64);
                    each(at, CACHE_WRITE, &l, u.cache_write() as f64);
                    each(at, REASONING, &l, u.reasoning as f64);
                    each(at, COST, &l, fact.cost_pico as f64 / 1e12);
                    each(at, GENERATIONS, &l, 1.0);
                    each(
                        at,
                        GENERATION_ERRORS,
                        &l,
                        if fact.error { 1.0 } else { 0.0 },
                    );
                    if let Some(ms) = fact.duration_ms {
                        each(at, DURATION, &l, ms.max(0) as f64 / 1000.0);
                    }
                    for (kind, n) in [("input", u.prompt_tokens()), ("output", u.output)] {
                        let mut t = l.clone();
                        t.push(("gen_ai.token.type", kind.into()));
                        t.sort();
                        each(at, TOKEN_USAGE, &t, n as f64);
                    }
                }
                FactKind::Tool => {
                    push(&mut l, "gen_ai.tool.name", Some(&fact.name));
                    l.sort();
                    each(at, TOOL_CALLS, &l, 1.0);
                    each(at, TOOL_ERRORS, &l, if fact.error { 1.0 } else { 0.0 });
                    if let Some(ms) = fact.duration_ms {
                        each(at, TOOL_DURATION, &l, ms.max(0) as f64 / 1000.0);
                    }
                }
                FactKind::Subagent => {}
            }
        },
    )
}

/// One fact of a pi or oh-my-pi session under the pi-otel-telemetry names.
fn pi_sample(
    fact: &crate::store::read::Fact,
    at: Option<i64>,
    each: &mut impl FnMut(Option<i64>, usize, &Labels, f64),
) {
    match fact.kind {
        FactKind::Prompt => each(at, PI_PROMPTS, &Labels::new(), 1.0),
        FactKind::Generation => {
            let l: Labels = vec![("model", fact.name.clone())];
            each(at, PI_TOKENS_INPUT, &l, fact.usage.prompt_tokens() as f64);
            each(at, PI_TOKENS_OUTPUT, &l, fact.usage.output as f64);
            each(at, PI_TURNS, &l, 1.0);
        }
        FactKind::Tool => {
            let l: Labels = vec![("tool", fact.name.clone())];
            each(at, PI_TOOL_CALLS, &l, 1.0);
            each(at, PI_TOOL_ERRORS, &l, if fact.error { 1.0 } else { 0.0 });
            if let Some(ms) = fact.duration_ms {
                each(at, PI_TOOL_DURATION, &l, ms.max(0) as f64 / 1000.0);
            }
        }
        FactKind::Subagent => {}
    }
}
