//! Configuration: `$XDG_CONFIG_HOME/tokentrace/config.toml` (or `--config FILE`, `$TOKENTRACE_CONFIG`), with
//! the `TOKENTRACE_*` environment variables taking precedence (DESIGN §1).
//!
//! ```toml
//! channel = "cli"                 # default channel of every session
//! user = "alice"
//! max_field_chars = 20000         # cap of each stored text field
//! capture = "full"                # metadata | prompts | full
//! redact = ["my-company-secret"]  # literals to redact (≥ 8 chars)
//! hash_paths = false              # store project paths as hashes
//! allow_insecure = false          # send credentials over plain http to non-loopback hosts
//! metrics_project_label = false   # label metrics with the project (one series per project)
//!
//! [resource]                      # resource attributes of every export (OTEL_RESOURCE_ATTRIBUTES wins)
//! "team.id" = "payments"
//!
//! [capture_fields]                # per-field overrides of the capture policy
//! tool_output = false
//!
//! [[channels]]                    # sessions whose cwd starts with `path` get `channel`
//! path = "~/bots/telegram"
//! channel = "telegram"
//!
//! [budgets]                       # USD limits; `tokentrace status` exits 10 near one, 11 over one
//! daily_usd = 20                  # also weekly_usd, monthly_usd, session_usd, warn_at = 0.8,
//!                                 # and [budgets.agent.NAME], [budgets.channel.NAME], [budgets.project.TEXT]
//!
//! [runaway]                       # repeat_tool_calls = 5, window_minutes = 10, window_usd, max_model_calls
//! [alerts]                        # notify = true (notify-send), webhook = "https://…" (Slack / Discord JSON)
//!
//! [prices."mock-gpt"]             # USD per million tokens; key `model` or `provider/model`
//! input = 3.0
//! output = 15.0
//! cache_read = 0.3
//! cache_write = 3.75
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::pricing::OverridePrice;
use crate::sources::Env;

/// Default cap of one stored text field, in characters (DESIGN §7).
pub const DEFAULT_MAX_FIELD_CHARS: usize = 20_000;

/// Maps sessions under a directory to a channel.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// Directory prefix of the session's cwd; `~` is the home directory.
    pub path: String,
    pub channel: String,
}

/// The config file's contents.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub capture: Option<String>,
    pub channel: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub max_field_chars: Option<usize>,
    /// Per-field capture overrides: `prompt`, `answer`, `response`, `reasoning`, `tool_input`,
    /// `tool_output`, `other` → keep or drop, whatever the policy.
    #[serde(default)]
    pub capture_fields: HashMap<String, bool>,
    /// Replace project paths by a stable hash (`TOKENTRACE_HASH_PATHS=1`).
    #[serde(default)]
    pub hash_paths: bool,
    /// Literal strings (≥ 8 chars) to redact wherever they appear.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Send credentials (OTLP header values, Langfuse keys, a URL password) over plain `http://` to a host
    /// that is not loopback (`TOKENTRACE_ALLOW_INSECURE=1`). Off: such a `sync` is refused.
    #[serde(default)]
    pub allow_insecure: bool,
    #[serde(default)]
    pub channels: Vec<ChannelRule>,
    #[serde(default)]
    pub prices: HashMap<String, OverridePrice>,
    /// Extra metric names for dashboards built on an agent's own telemetry: `claude_code`
    /// (`TOKENTRACE_METRICS_COMPAT`, comma-separated; `--metrics-compat`).
    #[serde(default)]
    pub metrics_compat: Vec<String>,
    /// Spending limits (`[budgets]`, see [`crate::status::budget`]): `status` compares spend with them.
    #[serde(default)]
    pub budgets: crate::status::budget::Budgets,
    /// Resource attributes of everything exported (`[resource]`: `"user.email" = "…"`, `"team.id" = "…"`);
    /// `OTEL_RESOURCE_ATTRIBUTES` wins for a key both set.
    #[serde(default)]
    pub resource: std::collections::BTreeMap<String, String>,
    /// Label metrics with the project (the last component of the session's working directory): one series
    /// per project, so off by default.
    #[serde(default)]
    pub metrics_project_label: bool,
    /// Runaway detection (`[runaway]`, see [`crate::status::anomaly`]).
    #[serde(default)]
    pub runaway: crate::status::anomaly::Runaway,
    /// Where anomalies are sent (`[alerts]`: `notify`, `webhook`).
    #[serde(default)]
    pub alerts: crate::status::anomaly::Alerts,
}

/// The config file to read: `explicit` (`--config`), `$TOKENTRACE_CONFIG`, else the XDG location.
pub fn config_path(explicit: Option<&Path>, env: &Env) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env.var("TOKENTRACE_CONFIG") {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = env.var("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(x).join("tokentrace/config.toml"));
    }
    env.home
        .as_ref()
        .map(|h| h.join(".config/tokentrace/config.toml"))
}

impl Config {
    /// Reads `path`; a missing file is an empty config, a malformed one an error naming the file.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read config file {}", path.display()))
            }
        };
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Applies `TOKENTRACE_CHANNEL`, `TOKENTRACE_USER`, `TOKENTRACE_CAPTURE`, `TOKENTRACE_TAGS`,
    /// `TOKENTRACE_HASH_PATHS`, `TOKENTRACE_ALLOW_INSECURE`, `TOKENTRACE_MAX_FIELD_CHARS` over the file's values.
    pub fn with_env(mut self, env: &Env) -> Result<Config> {
        if let Some(v) = env.var("TOKENTRACE_CHANNEL") {
            self.channel = Some(v.to_string());
        }
        if let Some(v) = env.var("TOKENTRACE_METRICS_COMPAT") {
            self.metrics_compat = v.split(',').map(|t| t.trim().to_string()).collect();
        }
        if let Some(v) = env.var("TOKENTRACE_USER") {
            self.user = Some(v.to_string());
        }
        if let Some(v) = env.var("TOKENTRACE_CAPTURE") {
            self.capture = Some(v.to_string());
        }
        if let Some(v) = env.var("TOKENTRACE_TAGS") {
            self.tags = v
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
        }
        if env.var("TOKENTRACE_HASH_PATHS").is_some_and(|v| v != "0") {
            self.hash_paths = true;
        }
        if env
            .var("TOKENTRACE_ALLOW_INSECURE")
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
        {
            self.allow_insecure = true;
        }
        if let Some(v) = env.var("TOKENTRACE_MAX_FIELD_CHARS") {
            self.max_field_chars = Some(
                v.parse()
                    .with_context(|| format!("TOKENTRACE_MAX_FIELD_CHARS={v} is not a number"))?,
            );
        }
        Ok(self)
    }

    /// The channel for a session with working directory `cwd`: the longest matching rule, else the default.
    pub fn channel_for(&self, cwd: Option<&str>, home: Option<&Path>) -> Option<String> {
        let expand = |p: &str| match (p.strip_prefix("~/"), home) {
            (Some(rest), Some(h)) => h.join(rest).to_string_lossy().into_owned(),
            _ => p.to_string(),
        };
        cwd.and_then(|cwd| {
            self.channels
                .iter()
                .map(|r| (expand(&r.path), &r.channel))
                .filter(|(p, _)| {
                    let p = p.trim_end_matches('/');
                    cwd == p || cwd.starts_with(&format!("{p}/"))
                })
                .max_by_key(|(p, _)| p.len())
                .map(|(_, c)| c.clone())
        })
        .or_else(|| self.channel.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_prices_and_env() {
        let cfg: Config = toml::from_str(
            r#"
            channel = "cli"
            [[channels]]
            path = "~/bots"
            channel = "bots"
            [[channels]]
            path = "~/bots/telegram"
            channel = "telegram"
            [prices."mock-gpt"]
            input = 3.0
            output = 15.0
            "#,
        )
        .unwrap();
        let home = Path::new("/home/u");
        assert_eq!(
            cfg.channel_for(Some("/home/u/bots/telegram/x"), Some(home))
                .as_deref(),
            Some("telegram")
        );
        assert_eq!(
            cfg.channel_for(Some("/home/u/bots/slack"), Some(home))
                .as_deref(),
            Some("bots")
        );
        assert_eq!(
            cfg.channel_for(Some("/home/u/botsy"), Some(home))
                .as_deref(),
            Some("cli")
        );
        assert_eq!(cfg.prices["mock-gpt"].output, Some(15.0));
        let mut env = Env::default();
        env.vars.insert("TOKENTRACE_CHANNEL".into(), "slack".into());
        env.vars.insert("TOKENTRACE_TAGS".into(), "a, b,".into());
        let cfg = cfg.with_env(&env).unwrap();
        assert_eq!(cfg.channel.as_deref(), Some("slack"));
        assert_eq!(cfg.tags, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn malformed_config_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "channel = [").unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("config.toml"), "{err}");
        assert_eq!(
            Config::load(Some(&dir.path().join("missing.toml"))).unwrap(),
            Config::default()
        );
    }
}
