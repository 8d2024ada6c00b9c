//! `tokentrace doctor`: what was found where, the config in effect, the store, unpriced models.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::{Context, SourceArgs};
use crate::pricing::table::{PriceTable, BUNDLED_VERSION};
use crate::privacy::truncate::{MARKERS, TRUNCATED};
use crate::report::printable;
use crate::sources;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Show the privacy settings in effect and count redactions by kind over the store.
    #[arg(long)]
    pub privacy: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn privacy_report(ctx: &Context, json_out: bool) -> Result<()> {
    let privacy = crate::privacy::Privacy::new(&ctx.config, &ctx.env.vars, ctx.env.home.clone())?;
    let fields: Vec<(&str, bool)> = crate::privacy::Field::ALL
        .iter()
        .map(|f| (f.as_str(), privacy.keeps(*f)))
        .collect();
    let store_path = ctx.store_path();
    let counts = if store_path.exists() {
        ctx.open_store_read_only()?.redaction_counts()?
    } else {
        Default::default()
    };
    let max_chars = ctx
        .config
        .max_field_chars
        .unwrap_or(crate::config::DEFAULT_MAX_FIELD_CHARS);
    if json_out {
        let doc = json!({
            "capture": privacy.capture.as_str(),
            "fields": fields.iter().map(|(f, k)| (f.to_string(), json!(k))).collect::<serde_json::Map<_, _>>(),
            "hash_paths": ctx.config.hash_paths,
            "redact_literals": ctx.config.redact.len(),
            "max_field_chars": max_chars,
            "redactions_in_store": counts,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "Capture policy: {} (TOKENTRACE_CAPTURE or `capture` in the config)",
        privacy.capture.as_str()
    );
    for (field, keep) in &fields {
        println!(
            "  {field:<12} {}",
            if *keep { "kept (redacted)" } else { "dropped" }
        );
    }
    println!(
        "Paths: home directory shown as ~{}",
        if ctx.config.hash_paths {
            "; project paths hashed"
        } else {
            ""
        }
    );
    println!(
        "Text fields capped at {max_chars} chars; {} literal(s) from the config redacted",
        ctx.config.redact.len()
    );
    let is_cap = |kind: &str| MARKERS.iter().any(|(_, k)| *k == kind);
    let (caps, secrets): (Vec<_>, Vec<_>) = counts.iter().partition(|(kind, _)| is_cap(kind));
    if secrets.is_empty() {
        println!("\nRedactions in the store: none");
    } else {
        println!("\nRedactions in the store, by kind:");
        for (kind, n) in &secrets {
            println!("  {kind:<18} {n}");
        }
    }
    if !caps.is_empty() {
        println!("Caps in the store:");
        for (kind, n) in &caps {
            let what = if kind.as_str() == TRUNCATED {
                "text fields cut"
            } else {
                "inline images replaced"
            };
            println!("  {kind:<18} {n} ({what})");
        }
    }
    Ok(())
}

pub fn run(ctx: &Context, args: DoctorArgs) -> Result<()> {
    if args.privacy {
        return privacy_report(ctx, args.json);
    }
    let agents = args.sources.agents()?;
    let roots = ctx.roots(&args.sources)?;
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for root in &roots {
        let scan = sources::scan(std::slice::from_ref(root), &agents, |_| None);
        problems.extend(scan.problems);
        let files = scan.files;
        let bytes: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(&f.path).ok())
            .map(|m| m.len())
            .sum();
        found.push((root, root.dir.is_dir(), files.len(), bytes));
    }
    let store_path = ctx.store_path();
    let store = if store_path.exists() {
        Some(ctx.open_store_read_only()?)
    } else {
        None
    };
    let counts = store.as_ref().map(|s| s.counts()).transpose()?;
    let unpriced = store
        .as_ref()
        .map(|s| s.unpriced_models())
        .transpose()?
        .unwrap_or_default();
    let warned: Vec<_> = match &store {
        Some(s) => {
            let mut files: Vec<_> = s
                .files()?
                .into_values()
                .filter(|f| f.warnings > 0)
                .collect();
            files.sort_by_key(|f| std::cmp::Reverse(f.warnings));
            files
        }
        None => Vec::new(),
    };
    let gaps = store
        .as_ref()
        .map(|s| s.known_gaps(&Default::default()))
        .transpose()?
        .unwrap_or_default();
    let missing = store
        .as_ref()
        .map(|s| s.files().map(|f| crate::ingest::missing_files(&f)))
        .transpose()?
        .unwrap_or_default();
    // Files whose last line has no newline yet: those bytes wait (the line may still be being written).
    let waiting: Vec<(String, u64)> = match &store {
        Some(s) => {
            let mut w: Vec<_> = s
                .files()?
                .into_values()
                .filter(|f| f.size > f.offset)
                .map(|f| (f.path, f.size - f.offset))
                .collect();
            w.sort();
            w
        }
        None => Vec::new(),
    };
    let drift = store
        .as_ref()
        .map(|s| s.drift())
        .transpose()?
        .unwrap_or_default();
    let mismatches = store
        .as_ref()
        .map(|s| s.cost_mismatches(super::report::COST_TOLERANCE_PICO))
        .transpose()?
        .unwrap_or_default();
    // A backend configuration error is shown, not fatal: doctor is where it gets explained.
    let (endpoints, endpoint_error) = match crate::sinks::endpoint::configured(&ctx.env) {
        Ok(e) => (e, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    let sinks: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|e| -> Result<serde_json::Value> {
            let backlog = store
                .as_ref()
                .map(|s| s.backlog(e.name))
                .transpose()?
                .unwrap_or_default();
            let refused = crate::sinks::endpoint::check_transport(e, ctx.config.allow_insecure)
                .err()
                .map(|err| err.to_string());
            Ok(json!({
                "sink": e.name, "url": e.display_url(), "reachable": reachable(&e.url),
                "pending": backlog.pending, "failed": backlog.failed, "delivered": backlog.sent,
                "scores_pending": backlog.scores_pending, "scores_refused": backlog.scores_failed,
                "last_error": backlog.last_error.as_deref().map(|m| e.scrub(m)),
                "refused": refused,
            }))
        })
        .collect::<Result<_>>()?;
    let config_exists = ctx.config_path.as_ref().is_some_and(|p| p.exists());
    let table = PriceTable::bundled();

    if args.json {
        let doc = json!({
            "data_dir": ctx.data_dir,
            "store": { "path": store_path, "exists": store.is_some(),
                       "size_bytes": std::fs::metadata(&store_path).map(|m| m.len()).ok(),
                       "sessions": counts.map(|c| c.0), "traces": counts.map(|c| c.1),
                       "observations": counts.map(|c| c.2), "files": counts.map(|c| c.3) },
            "config_error": ctx.config_error, "backend_error": endpoint_error,
            "config": { "path": ctx.config_path, "exists": config_exists,
                        "capture": ctx.config.capture.clone().unwrap_or_else(|| "full".into()),
                        "channel": ctx.config.channel, "user": ctx.config.user, "channel_rules": ctx.config.channels.len(),
                        "price_overrides": ctx.config.prices.keys().collect::<Vec<_>>() },
            "prices": { "table": BUNDLED_VERSION, "models": table.models.len() },
            "sources": found.iter().map(|(r, exists, n, bytes)| json!({
                "agent": r.agent.map(|a| a.as_str()), "dir": r.dir, "origin": r.origin, "exists": exists, "files": n, "bytes": bytes,
            })).collect::<Vec<_>>(),
            "files_with_warnings": warned.iter().map(|f| json!({ "path": f.path, "warnings": f.warnings, "last": f.last_warning })).collect::<Vec<_>>(),
            "files_gone_from_disk": missing,
            "sinks": sinks,
            "known_gaps": gaps.iter().map(|(g, n)| json!({ "gap": g, "sessions": n })).collect::<Vec<_>>(),
            "unreadable": problems.iter().filter(|p| p.kind == sources::ProblemKind::Unreadable)
                .map(|p| json!({ "path": p.path, "agent": p.agent.map(|a| a.as_str()), "reason": p.reason })).collect::<Vec<_>>(),
            "unrecognized": problems.iter().filter(|p| p.kind == sources::ProblemKind::Unrecognized)
                .map(|p| json!({ "path": p.path, "agent": p.agent.map(|a| a.as_str()), "reason": p.reason })).collect::<Vec<_>>(),
            "waiting_for_newline": waiting.iter().map(|(p, n)| json!({ "path": p, "bytes": n })).collect::<Vec<_>>(),
            "format_drift": drift.iter().map(|d| json!({
                "agent": d.agent, "agent_version": d.agent_version, "what": d.what, "name": d.name,
                "count": d.count, "files": d.files, "example": d.example })).collect::<Vec<_>>(),
            "cost_mismatches": mismatches.iter().map(|m| json!({
                "session": m.session_key, "agent_version": m.agent_version,
                "agent_cost_usd": crate::model::pico_to_usd(m.agent_cost),
                "tokentrace_cost_usd": crate::model::pico_to_usd(m.ours),
                "unattributed_usd": crate::model::pico_to_usd(m.agent_cost - m.ours) })).collect::<Vec<_>>(),
            "unpriced_models": unpriced.iter().map(|(p, m, n)| json!({ "provider": p, "model": m, "generations": n })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return config_outcome(ctx, endpoint_error.as_deref());
    }

    if let Some(e) = &ctx.config_error {
        println!("⚠ The config cannot be used (defaults are shown below): {e}\n");
    }
    if let Some(e) = &endpoint_error {
        println!("⚠ Backend configuration error (sync would stop here): {e}\n");
    }
    println!("Sources");
    for (root, exists, n, bytes) in &found {
        let agent = root.agent.map(|a| a.as_str()).unwrap_or("any");
        if *exists {
            println!(
                "  {agent:<6} {}  ({}): {n} session file(s), {:.1} MB",
                root.dir.display(),
                root.origin,
                *bytes as f64 / 1e6
            );
        } else {
            println!(
                "  {agent:<6} {}  ({}): not found",
                root.dir.display(),
                root.origin
            );
        }
    }
    println!("\nStore");
    println!(
        "  {}{}",
        store_path.display(),
        if store.is_some() {
            ""
        } else {
            " (not created yet: run `tokentrace report`)"
        }
    );
    if let Some((s, t, o, f)) = counts {
        println!("  {s} sessions, {t} traces, {o} observations from {f} files");
    }
    println!("\nConfig");
    match &ctx.config_path {
        Some(p) => println!(
            "  {}{}",
            p.display(),
            if config_exists {
                ""
            } else {
                " (none: defaults in effect)"
            }
        ),
        None => println!("  no config location (neither $XDG_CONFIG_HOME nor $HOME set)"),
    }
    println!(
        "  capture policy: {}",
        ctx.config.capture.as_deref().unwrap_or("full")
    );
    println!(
        "  channel: {}  user: {}  channel rules: {}",
        ctx.config.channel.as_deref().unwrap_or("-"),
        ctx.config.user.as_deref().unwrap_or("-"),
        ctx.config.channels.len()
    );
    println!(
        "  prices: {BUNDLED_VERSION} ({} models), {} override(s)",
        table.models.len(),
        ctx.config.prices.len()
    );
    println!("\nBackends");
    if sinks.is_empty() {
        println!("  none configured (OTEL_EXPORTER_OTLP_ENDPOINT, LANGFUSE_PUBLIC_KEY + LANGFUSE_SECRET_KEY): reports only");
    }
    for s in &sinks {
        println!(
            "  {} {} ({}): {} pending, {} failed, {} delivered{}{}",
            s["sink"].as_str().unwrap_or(""),
            printable(s["url"].as_str().unwrap_or("")),
            if s["reachable"] == true {
                "reachable"
            } else {
                "NOT reachable"
            },
            s["pending"],
            s["failed"],
            s["delivered"],
            match (s["scores_pending"].as_u64(), s["scores_refused"].as_u64()) {
                (Some(p), Some(f)) if p + f > 0 => format!("; scores: {p} pending, {f} refused"),
                _ => String::new(),
            },
            s["last_error"]
                .as_str()
                .map(|e| format!("\n    last error: {}", printable(e)))
                .unwrap_or_default()
        );
        if let Some(why) = s["refused"].as_str() {
            println!("    sync will refuse it: {why}");
        }
    }
    if !warned.is_empty() {
        println!("\nFiles with skipped or repaired lines");
        for f in warned.iter().take(10) {
            println!(
                "  {} — {} warning(s), last: {}",
                printable(&f.path),
                f.warnings,
                printable(f.last_warning.as_deref().unwrap_or("-"))
            );
        }
    }
    if !missing.is_empty() {
        println!(
            "\n{} imported file(s) are gone from disk; their data stays in the store.",
            missing.len()
        );
    }
    if !gaps.is_empty() {
        println!("\nKnown gaps in what the agents record:");
        for (gap, n) in &gaps {
            println!("  {gap} ({n} session(s))");
        }
    }
    if !waiting.is_empty() {
        println!("\nWaiting for the newline that ends their last line (read once it arrives):");
        for (p, n) in &waiting {
            println!("  {p}: {n} byte(s)");
        }
    }
    for (kind, title) in [
        (
            sources::ProblemKind::Unreadable,
            "Could not be read (their sessions are missing from reports)",
        ),
        (
            sources::ProblemKind::Unrecognized,
            "In an agent's session folder but not read as its sessions",
        ),
    ] {
        let list: Vec<_> = problems.iter().filter(|p| p.kind == kind).collect();
        if !list.is_empty() {
            println!("\n{title}:");
            for p in list {
                println!("  {}: {}", p.path.display(), p.reason);
            }
        }
    }
    if drift.is_empty() {
        println!("\nFormat drift: none (every line type and usage field is known)");
    } else {
        println!("\nFormat drift (the agents wrote things this tokentrace does not know; totals may miss them):");
        let mut groups: BTreeMap<
            (String, Option<String>, String),
            Vec<&crate::store::read::DriftRow>,
        > = BTreeMap::new();
        for d in &drift {
            groups
                .entry((d.agent.clone(), d.agent_version.clone(), d.what.clone()))
                .or_default()
                .push(d);
        }
        for ((agent, version, what), rows) in &groups {
            println!(
                "  {} {}: {} unknown {}{}: {}",
                agent_label(agent),
                version.as_deref().unwrap_or("(version not recorded)"),
                rows.len(),
                what,
                if rows.len() == 1 { "" } else { "s" },
                rows.iter()
                    .map(|d| format!("{} ({}×)", d.name, d.count))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for d in rows.iter().filter(|d| d.example.is_some()).take(3) {
                println!("      e.g. {}", d.example.as_deref().unwrap_or_default());
            }
        }
    }
    for m in &mismatches {
        println!(
            "\nCost cross-check: {}",
            super::report::describe_mismatch(m)
        );
    }
    if unpriced.is_empty() {
        println!("\nUnpriced models: none");
    } else {
        println!("\nUnpriced models (tokens without a price; add [prices.\"MODEL\"] to the config file):");
        for (p, m, n) in &unpriced {
            println!(
                "  {}{}: {n} generation(s)",
                p.as_deref()
                    .map(|p| format!("{}/", printable(p)))
                    .unwrap_or_default(),
                printable(m)
            );
        }
    }
    config_outcome(ctx, endpoint_error.as_deref())
}

/// True when a TCP connection to the URL's host and port opens within 2 s.
fn reachable(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default()) else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
        })
}

/// The agent's product name for messages ("Claude Code 2.1.340: …").
fn agent_label(agent: &str) -> &str {
    match agent {
        "pi" => "pi",
        "omp" => "oh-my-pi",
        "claude" => "Claude Code",
        "codex" => "Codex CLI",
        "gemini" => "Gemini CLI",
        other => other,
    }
}

/// After the whole report was printed: a configuration error (config file or backend variables) makes
/// `doctor` exit 1, so scripts notice; it was shown first in the output.
fn config_outcome(ctx: &Context, endpoint_error: Option<&str>) -> Result<()> {
    match (&ctx.config_error, endpoint_error) {
        (None, None) => Ok(()),
        (Some(e), _) => anyhow::bail!("the config cannot be used: {e}"),
        (None, Some(e)) => anyhow::bail!("backend configuration error: {e}"),
    }
}
