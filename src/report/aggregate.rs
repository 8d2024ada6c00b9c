//! Aggregation of store facts into report rows.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::model::CostSource;
use crate::store::read::{Fact, FactKind, SessionRow};

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Grouping {
    /// One row per calendar day (in `--tz`).
    Daily,
    /// One row per ISO week, keyed by its Monday.
    Weekly,
    /// One row per calendar month.
    Monthly,
    /// One row per agent session.
    Session,
    /// One row per model (the model the provider answered with, else the requested one).
    Model,
    /// One row per project (session working directory).
    Project,
    /// One row per channel (config rules, `TOKENTRACE_CHANNEL`).
    Channel,
    /// One row per agent program.
    Agent,
    /// One row per tool: calls, errors, time spent.
    Tool,
    /// One row per 5-hour billing block of an agent (Claude Code and Codex by default), as ccusage's
    /// `blocks` defines them.
    Blocks,
}

impl Grouping {
    /// Daily, weekly or monthly: rows are periods of time.
    pub fn is_period(self) -> bool {
        matches!(self, Grouping::Daily | Grouping::Weekly | Grouping::Monthly)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::Daily => "daily",
            Grouping::Weekly => "weekly",
            Grouping::Monthly => "monthly",
            Grouping::Session => "session",
            Grouping::Model => "model",
            Grouping::Project => "project",
            Grouping::Channel => "channel",
            Grouping::Agent => "agent",
            Grouping::Tool => "tool",
            Grouping::Blocks => "blocks",
        }
    }
}

/// Token sums as reports show them (`cache_write` = 5m + 1h).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

impl Tokens {
    /// input + output + cache read + cache write: every token a call moved (what plan limits count, and the
    /// tables' "Total tokens").
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }
}

/// Counters of one row (or of all rows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub prompts: u64,
    pub generations: u64,
    pub generation_errors: u64,
    pub tool_calls: u64,
    pub tool_errors: u64,
    pub subagents: u64,
    pub tokens: Tokens,
    /// pico-USD.
    pub cost_pico: i64,
    /// Model calls with a rejected (impossible) token count or cost, counted without it.
    pub flagged: u64,
    /// Cost sources of priced generations with tokens or an agent figure.
    pub cost_sources: BTreeSet<&'static str>,
    /// Models whose tokens had no price.
    pub unpriced_models: BTreeSet<String>,
    /// Model calls whose tokens had no price (the dashboard's unpriced share).
    pub unpriced_generations: u64,
    /// Summed duration of tool calls, ms.
    pub tool_duration_ms: i64,
    pub sessions: SessionSet,
    /// Models of the generations counted.
    pub models: BTreeSet<String>,
}

impl Totals {
    /// Adds one fact.
    pub fn add(&mut self, fact: &Fact) {
        self.sessions.insert(&fact.session_key);
        match fact.kind {
            FactKind::Prompt => self.prompts += 1,
            FactKind::Subagent => self.subagents += 1,
            FactKind::Tool => {
                self.tool_calls += 1;
                self.tool_errors += u64::from(fact.error);
                self.tool_duration_ms += fact.duration_ms.unwrap_or(0).max(0);
            }
            FactKind::Generation => {
                if let Some(m) = &fact.model {
                    if !self.models.contains(m) {
                        self.models.insert(m.clone());
                    }
                }
                self.generations += 1;
                self.generation_errors += u64::from(fact.error);
                let u = &fact.usage;
                // Checked: a sum saturates instead of wrapping (values are bounded at import anyway).
                self.tokens.input = self.tokens.input.saturating_add(u.input);
                self.tokens.cache_read = self.tokens.cache_read.saturating_add(u.cache_read);
                self.tokens.cache_write = self.tokens.cache_write.saturating_add(u.cache_write());
                self.tokens.output = self.tokens.output.saturating_add(u.output);
                self.tokens.reasoning = self.tokens.reasoning.saturating_add(u.reasoning);
                self.cost_pico = self.cost_pico.saturating_add(fact.cost_pico);
                self.flagged += u64::from(fact.flagged);
                if fact.unpriced {
                    self.unpriced_generations += 1;
                    let model = match (&fact.provider, &fact.model) {
                        (Some(p), Some(m)) => format!("{p}/{m}"),
                        (None, Some(m)) => m.clone(),
                        _ => "unknown".into(),
                    };
                    self.unpriced_models.insert(model);
                } else if fact.cost_source != CostSource::None {
                    self.cost_sources.insert(fact.cost_source.as_str());
                }
            }
        }
    }

    /// `agent`, `table`, `override`, `mixed`, or `none` when nothing was priced.
    pub fn cost_source(&self) -> &'static str {
        match self.cost_sources.len() {
            0 => "none",
            1 => self.cost_sources.iter().next().copied().unwrap_or("none"),
            _ => "mixed",
        }
    }
}

/// The distinct sessions of a row (reports show how many).
///
/// Facts come grouped by session, so the last key added answers most lookups with one comparison instead of
/// a tree search (a warm daily report adds each of 37k facts to up to four rows on the 1 GB benchmark, and
/// string comparisons were 17 % of its samples).
#[derive(Debug, Clone, Default)]
pub struct SessionSet {
    keys: HashSet<String>,
    last: String,
}

impl SessionSet {
    /// Adds a session key (copied only when new).
    pub fn insert(&mut self, key: &str) {
        if self.last == key {
            return;
        }
        if !self.keys.contains(key) {
            self.keys.insert(key.to_string());
        }
        self.last.clear();
        self.last.push_str(key);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl PartialEq for SessionSet {
    /// The same sessions (the lookup cache does not count).
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}

/// Inclusive date range in the report's time zone.
#[derive(Debug, Clone)]
pub struct Window {
    pub tz: TimeZone,
    pub since: Option<Date>,
    pub until: Option<Date>,
}

impl Window {
    /// The date of a timestamp in the window's zone.
    pub fn date(&self, ms: i64) -> Option<Date> {
        jiff::Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| self.tz.to_datetime(t).date())
    }

    /// True when a fact at `ms` falls inside the window (facts without a time are kept only without bounds).
    pub fn contains(&self, ms: Option<i64>) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(date) = ms.and_then(|ms| self.date(ms)) else {
            return false;
        };
        self.since.is_none_or(|s| date >= s) && self.until.is_none_or(|u| date <= u)
    }

    pub fn is_bounded(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }
}

/// Rows keyed by group, in key order, plus the totals.
#[derive(Debug, Default)]
pub struct Aggregate {
    pub rows: BTreeMap<String, Totals>,
    /// For daily, weekly and monthly reports: each row split by agent program (row key → agent → totals),
    /// so a day on which several agents ran shows what each of them did and cost.
    pub by_agent: BTreeMap<String, BTreeMap<String, Totals>>,
    /// Each row's model calls split by model (row key → model → totals of its generations): `--breakdown`.
    pub by_model: BTreeMap<String, BTreeMap<String, Totals>>,
    pub totals: Totals,
    /// Cache of the last period key (daily, weekly, monthly groupings).
    periods: PeriodKeys,
    /// The blocks facts are keyed by (`Grouping::Blocks`), built from the facts beforehand.
    pub blocks: Option<super::blocks::BlockIndex>,
}

/// Groups facts. `sessions` maps session keys to their rows (for project, channel and agent groupings).
pub fn aggregate(
    grouping: Grouping,
    window: &Window,
    sessions: &BTreeMap<String, SessionRow>,
    facts: impl IntoIterator<Item = Fact>,
) -> Aggregate {
    let mut agg = Aggregate::default();
    for fact in facts {
        agg.add(grouping, window, sessions, &fact);
    }
    agg
}

impl Aggregate {
    /// Adds one fact to its group (facts outside the window, or without a group, are skipped). Memory stays
    /// proportional to the number of groups, not of facts.
    pub fn add(
        &mut self,
        grouping: Grouping,
        window: &Window,
        sessions: &BTreeMap<String, SessionRow>,
        fact: &Fact,
    ) {
        if !window.contains(fact.ts_ms) {
            return;
        }
        let session = sessions.get(&fact.session_key);
        let agent = session.map_or("unknown", |s| s.agent.as_str());
        // Keys are borrowed and a group's key is copied only when the group is new: a warm daily report adds
        // ~37k facts (1 GB Claude benchmark), and an owned key per map per fact was half its time.
        let period;
        let block;
        let key: &str = match grouping {
            Grouping::Daily | Grouping::Weekly | Grouping::Monthly => {
                let ms = fact.ts_ms.or_else(|| session.and_then(|s| s.start_ms));
                match ms.and_then(|ms| window.date(ms)) {
                    Some(d) => {
                        period = self.periods.key(grouping, d);
                        &period
                    }
                    None => "unknown",
                }
            }
            Grouping::Session => &fact.session_key,
            Grouping::Model => match fact.kind {
                FactKind::Generation => fact.model.as_deref().unwrap_or("unknown"),
                _ => return,
            },
            Grouping::Tool => match fact.kind {
                FactKind::Tool => &fact.name,
                _ => return,
            },
            Grouping::Project => session
                .and_then(|s| s.cwd.as_deref())
                .unwrap_or("(unknown)"),
            Grouping::Channel => session
                .and_then(|s| s.channel.as_deref())
                .unwrap_or("(none)"),
            Grouping::Agent => agent,
            Grouping::Blocks => {
                let found = fact.ts_ms.and_then(|ts| {
                    let index = self.blocks.as_ref()?;
                    index
                        .find(agent, ts)
                        .map(|b| super::blocks::BlockIndex::key(agent, b))
                });
                match found {
                    Some(k) => {
                        block = k;
                        &block
                    }
                    None => return,
                }
            }
        };
        if grouping.is_period() {
            group(group(&mut self.by_agent, key), agent).add(fact);
        }
        if fact.kind == FactKind::Generation
            && !matches!(grouping, Grouping::Model | Grouping::Tool)
        {
            let model = fact.model.as_deref().unwrap_or("unknown");
            group(group(&mut self.by_model, key), model).add(fact);
        }
        group(&mut self.rows, key).add(fact);
        self.totals.add(fact);
    }
}

/// The value of `key` in `map`, created when missing; the key is copied only then.
fn group<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// The last period key computed, by date: consecutive facts mostly fall on the same day.
#[derive(Debug, Default)]
pub struct PeriodKeys {
    last: Option<(Grouping, Date, std::sync::Arc<str>)>,
}

impl PeriodKeys {
    fn key(&mut self, grouping: Grouping, d: Date) -> std::sync::Arc<str> {
        match &self.last {
            Some((g, date, key)) if *g == grouping && *date == d => key.clone(),
            _ => {
                let key: std::sync::Arc<str> = period_key(grouping, d).into();
                self.last = Some((grouping, d, key.clone()));
                key
            }
        }
    }
}

fn period_key(grouping: Grouping, d: Date) -> String {
    match grouping {
        Grouping::Weekly => {
            let monday = d
                .checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset())))
                .unwrap_or(d);
            monday.to_string()
        }
        Grouping::Monthly => format!("{:04}-{:02}", d.year(), d.month()),
        _ => d.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Usage;

    fn fact(kind: FactKind, ts: i64, model: &str, input: u64, cost: i64) -> Fact {
        Fact {
            kind,
            session_key: "pi:s".into(),
            ts_ms: Some(ts),
            name: model.into(),
            model: Some(model.into()),
            provider: None,
            error: false,
            usage: Usage {
                input,
                ..Default::default()
            },
            cost_pico: cost,
            cost_source: CostSource::Agent,
            unpriced: false,
            duration_ms: None,
            flagged: false,
        }
    }

    #[test]
    fn days_follow_the_time_zone() {
        // 2026-11-23T23:30Z is the 23rd in UTC and the 24th in Berlin (UTC+1).
        let ts = 1_795_476_600_000;
        let facts = || {
            vec![
                fact(FactKind::Generation, ts, "m", 10, 5),
                fact(FactKind::Generation, ts - 86_400_000, "m", 1, 1),
            ]
        };
        let utc = Window {
            tz: TimeZone::UTC,
            since: None,
            until: None,
        };
        let berlin = Window {
            tz: TimeZone::get("Europe/Berlin").unwrap(),
            since: None,
            until: None,
        };
        let sessions = BTreeMap::new();
        let a = aggregate(Grouping::Daily, &utc, &sessions, facts());
        assert_eq!(
            a.rows.keys().collect::<Vec<_>>(),
            vec!["2026-11-22", "2026-11-23"]
        );
        let b = aggregate(Grouping::Daily, &berlin, &sessions, facts());
        assert_eq!(
            b.rows.keys().collect::<Vec<_>>(),
            vec!["2026-11-23", "2026-11-24"]
        );
        assert_eq!(b.rows["2026-11-24"].tokens.input, 10);
        assert_eq!(b.totals.cost_pico, 6);
        let weekly = aggregate(Grouping::Weekly, &utc, &sessions, facts());
        assert_eq!(
            weekly.rows.keys().collect::<Vec<_>>(),
            vec!["2026-11-16", "2026-11-23"]
        );
        let since = Window {
            tz: TimeZone::UTC,
            since: Some(jiff::civil::date(2026, 11, 23)),
            until: None,
        };
        assert_eq!(
            aggregate(Grouping::Monthly, &since, &sessions, facts())
                .totals
                .tokens
                .input,
            10
        );
    }
}
