//! Spending limits (`[budgets]` in the config) and how spend compares with them.
//!
//! ```toml
//! [budgets]
//! daily_usd = 20          # all agents, per calendar day (in status's time zone)
//! weekly_usd = 100        # per ISO week (Monday to Sunday)
//! monthly_usd = 300
//! session_usd = 5         # any one session
//! warn_at = 0.8           # share of a limit that counts as "near" (default 0.8)
//!
//! [budgets.agent.claude]  # the same four limits per agent, channel or project
//! daily_usd = 10
//! [budgets.channel.telegram]
//! monthly_usd = 50
//! [budgets.project.tokentrace]   # sessions whose working directory contains this text
//! daily_usd = 5
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{pico_to_usd, Pico};
use crate::store::live::SessionSpend;

/// Share of a limit from which spend is "near" it, unless `warn_at` says otherwise.
pub const DEFAULT_WARN_AT: f64 = 0.8;

/// USD limits of one scope.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub daily_usd: Option<f64>,
    pub weekly_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
    pub session_usd: Option<f64>,
}

/// The `[budgets]` table: limits overall and per agent, channel and project.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    pub daily_usd: Option<f64>,
    pub weekly_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
    pub session_usd: Option<f64>,
    pub warn_at: Option<f64>,
    #[serde(default)]
    pub agent: BTreeMap<String, Limits>,
    #[serde(default)]
    pub channel: BTreeMap<String, Limits>,
    #[serde(default)]
    pub project: BTreeMap<String, Limits>,
}

/// Where a spend figure is ok, near its limit or over it. Ordered: the worst level wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetLevel {
    #[default]
    Ok,
    Near,
    Over,
}

impl BudgetLevel {
    /// The exit code of `status` for scripts: 0 ok, 10 near a budget, 11 over one.
    pub fn exit_code(self) -> i32 {
        match self {
            BudgetLevel::Ok => 0,
            BudgetLevel::Near => 10,
            BudgetLevel::Over => 11,
        }
    }
}

/// One limit compared with the spend it covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetCheck {
    /// `all`, `agent:claude`, `channel:telegram`, `project:TEXT`.
    pub scope: String,
    /// `day`, `week`, `month`, or `session` (then `session` names it).
    pub period: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub limit_usd: f64,
    pub spent_usd: f64,
    /// spent / limit.
    pub share: f64,
    pub level: BudgetLevel,
}

impl Budgets {
    /// True when no limit is set anywhere.
    pub fn is_empty(&self) -> bool {
        self.scopes().iter().all(|(_, l)| *l == Limits::default())
    }

    /// True when a daily, weekly or monthly limit is set in some scope: [`Budgets::evaluate`] then needs the
    /// spend of each session in the period (else the period totals answer every question).
    pub fn has_period_limits(&self) -> bool {
        self.scopes().iter().any(|(_, l)| {
            l.daily_usd.is_some() || l.weekly_usd.is_some() || l.monthly_usd.is_some()
        })
    }

    /// Every scope with its limits: `all`, `agent:NAME`, `channel:NAME`, `project:TEXT`.
    fn scopes(&self) -> Vec<(String, Limits)> {
        let overall = Limits {
            daily_usd: self.daily_usd,
            weekly_usd: self.weekly_usd,
            monthly_usd: self.monthly_usd,
            session_usd: self.session_usd,
        };
        let mut out = vec![("all".to_string(), overall)];
        for (kind, map) in [
            ("agent", &self.agent),
            ("channel", &self.channel),
            ("project", &self.project),
        ] {
            out.extend(map.iter().map(|(k, l)| (format!("{kind}:{k}"), *l)));
        }
        out
    }

    /// Compares every limit with the spend of the sessions it covers. `spend` holds each session's cost in
    /// the current day, week and month; `sessions` the cost of each session to check against the
    /// per-session limits (`key`, agent, channel, cwd, pico-USD). Only limits that are set give a check.
    pub fn evaluate(&self, spend: &[SessionSpend], sessions: &[SessionSpend]) -> Vec<BudgetCheck> {
        let warn_at = self.warn_at.unwrap_or(DEFAULT_WARN_AT);
        let mut checks = Vec::new();
        for (scope, limits) in self.scopes() {
            let periods = [
                ("day", limits.daily_usd),
                ("week", limits.weekly_usd),
                ("month", limits.monthly_usd),
            ];
            for (i, (period, limit)) in periods.into_iter().enumerate() {
                let Some(limit) = limit else { continue };
                let spent: Pico = spend
                    .iter()
                    .filter(|s| covers(&scope, s))
                    .map(|s| s.cost_pico[i])
                    .sum();
                checks.push(check(&scope, period, None, limit, spent, warn_at));
            }
            if let Some(limit) = limits.session_usd {
                for s in sessions.iter().filter(|s| covers(&scope, s)) {
                    let spent = s.cost_pico[0];
                    checks.push(check(
                        &scope,
                        "session",
                        Some(s.session_key.clone()),
                        limit,
                        spent,
                        warn_at,
                    ));
                }
            }
        }
        checks
    }
}

/// The worst level among `checks` (ok when there are none).
pub fn worst(checks: &[BudgetCheck]) -> BudgetLevel {
    checks.iter().map(|c| c.level).max().unwrap_or_default()
}

/// Whether a budget scope covers a session: `all`; the agent or channel by name; a project by a substring of
/// the working directory (as `report --project`).
pub fn covers(scope: &str, s: &SessionSpend) -> bool {
    match scope.split_once(':') {
        None => true,
        Some(("agent", name)) => s.agent == name,
        Some(("channel", name)) => s.channel.as_deref() == Some(name),
        Some(("project", text)) => s.cwd.as_deref().is_some_and(|c| c.contains(text)),
        Some(_) => false,
    }
}

fn check(
    scope: &str,
    period: &'static str,
    session: Option<String>,
    limit: f64,
    spent: Pico,
    warn_at: f64,
) -> BudgetCheck {
    let spent_usd = pico_to_usd(spent);
    let share = if limit > 0.0 {
        spent_usd / limit
    } else {
        f64::INFINITY
    };
    let level = if spent_usd >= limit {
        BudgetLevel::Over
    } else if share >= warn_at {
        BudgetLevel::Near
    } else {
        BudgetLevel::Ok
    };
    BudgetCheck {
        scope: scope.to_string(),
        period,
        session,
        limit_usd: limit,
        spent_usd,
        share,
        level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(
        key: &str,
        agent: &str,
        channel: Option<&str>,
        cwd: &str,
        usd: [f64; 3],
    ) -> SessionSpend {
        SessionSpend {
            session_key: key.into(),
            agent: agent.into(),
            channel: channel.map(str::to_string),
            cwd: Some(cwd.into()),
            cost_pico: usd.map(|u| (u * 1e12) as i64),
        }
    }

    #[test]
    fn limits_per_scope_and_period() {
        let budgets: Budgets = toml::from_str(
            "daily_usd = 10\nmonthly_usd = 100\nsession_usd = 3\n[agent.claude]\ndaily_usd = 4\n\
             [channel.telegram]\nweekly_usd = 2\n[project.web]\ndaily_usd = 100",
        )
        .unwrap();
        let rows = [
            spend("claude:a", "claude", None, "/src/web", [3.5, 5.0, 50.0]),
            spend("pi:b", "pi", Some("telegram"), "/bots/tg", [2.0, 2.5, 20.0]),
        ];
        let checks = budgets.evaluate(&rows, &rows);
        let get = |scope: &str, period: &str| {
            checks
                .iter()
                .find(|c| {
                    c.scope == scope && c.period == period && c.session.as_deref() != Some("pi:b")
                })
                .unwrap()
        };
        assert_eq!(get("all", "day").spent_usd, 5.5);
        assert_eq!(get("all", "day").level, BudgetLevel::Ok);
        assert_eq!(get("all", "month").spent_usd, 70.0);
        assert_eq!(get("agent:claude", "day").spent_usd, 3.5);
        assert_eq!(
            get("agent:claude", "day").level,
            BudgetLevel::Near,
            "3.5 of 4 is past 80 %"
        );
        assert_eq!(
            get("channel:telegram", "week").level,
            BudgetLevel::Over,
            "2.5 of 2"
        );
        assert_eq!(get("project:web", "day").spent_usd, 3.5);
        // Per-session limit: one check per session.
        let per_session: Vec<_> = checks.iter().filter(|c| c.period == "session").collect();
        assert_eq!(per_session.len(), 2);
        assert_eq!(per_session[0].level, BudgetLevel::Over, "3.5 of 3");
        assert_eq!(worst(&checks), BudgetLevel::Over);
        assert_eq!(worst(&[]), BudgetLevel::Ok);
        assert!(!budgets.is_empty() && Budgets::default().is_empty());
    }
}
