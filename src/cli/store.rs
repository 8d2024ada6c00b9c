//! `tokentrace store rebuild`: a fresh store from the session files, keeping the delivery state.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{Context, SourceArgs};
use crate::ingest::{self, Enricher};
use crate::model::Agent;
use crate::sources::{self, DiscoveredFile};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-import every session file into a fresh store (after damage, or to apply new parsing rules to old
    /// data). Keeps what backends acknowledged, queued scores and settings; sessions whose files are gone
    /// cannot be rebuilt and are listed. The old store is kept beside it as `tokentrace.db.before-rebuild`.
    /// Stop `watch` and `sync` first.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, args: StoreArgs) -> Result<()> {
    match args.command {
        StoreCommand::Rebuild(a) => rebuild(ctx, a),
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn remove_with_wal(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = sibling(path, suffix);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}

fn rebuild(ctx: &Context, args: RebuildArgs) -> Result<()> {
    let path = ctx.store_path();
    anyhow::ensure!(
        path.exists(),
        "no store at {} to rebuild (a report or sync creates it)",
        path.display()
    );
    // Every file the old store knows that still exists, plus whatever the default locations hold now.
    // A damaged store may not open at all: then only the default locations are read and nothing carries over.
    let old_state = (|| -> Result<_> {
        let old = Store::open(&path)?;
        old.checkpoint()?;
        let files = old.files()?;
        let sessions = old.sessions(&Default::default())?.len();
        Ok((files, sessions))
    })();
    let readable = old_state.is_ok();
    let (old_files, old_sessions) = match old_state {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "tokentrace: the old store cannot be read ({e:#}); rebuilding from the default session locations \
                 only, without its delivery state"
            );
            (Default::default(), 0)
        }
    };
    let mut files: Vec<DiscoveredFile> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in old_files.values() {
        if let (true, Some(agent)) = (Path::new(&row.path).exists(), Agent::parse(&row.agent)) {
            if seen.insert(row.path.clone()) {
                files.push(DiscoveredFile {
                    path: PathBuf::from(&row.path),
                    agent,
                    stat: None,
                });
            }
        }
    }
    let src = SourceArgs::default();
    let found = sources::scan(&ctx.roots(&src)?, &src.agents()?, |_| None);
    for f in found.files {
        if seen.insert(f.path.to_string_lossy().into_owned()) {
            files.push(f);
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let fresh_path = sibling(&path, ".rebuild");
    remove_with_wal(&fresh_path)?;
    let mut fresh = Store::open(&fresh_path)?;
    let enricher = Enricher::try_new(ctx.config.clone(), ctx.env.home.clone(), &ctx.env.vars)?;
    super::reprice::follow_prices(&mut fresh, enricher.pricer())?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let summary = ingest::import(&mut fresh, &files, &enricher, interactive)?;
    super::print_import_warnings(&summary);
    let carried = if readable {
        fresh.carry_over_from(&path)?
    } else {
        Default::default()
    };
    let new_sessions = fresh.sessions(&Default::default())?.len();
    fresh.checkpoint()?;
    drop(fresh);

    let backup = sibling(&path, ".before-rebuild");
    remove_with_wal(&backup)?;
    std::fs::rename(&path, &backup)
        .with_context(|| format!("cannot move the old store to {}", backup.display()))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(&path, suffix));
    }
    std::fs::rename(&fresh_path, &path)
        .with_context(|| format!("cannot move the rebuilt store to {}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(&fresh_path, suffix));
    }

    if args.json {
        let doc = json!({
            "store": path, "backup": backup,
            "files_read": summary.files_read, "sessions_before": old_sessions, "sessions_after": new_sessions,
            "delivery_rows_kept": carried.delivery, "scores_kept": carried.scores,
            "not_recovered": carried.lost_sessions.iter().map(|(k, f)| json!({ "session": k, "file": f })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "Rebuilt {} from {} session file(s): {} session(s) (before: {}).",
        path.display(),
        summary.files_read,
        new_sessions,
        old_sessions
    );
    println!(
        "Kept the delivery state: {} trace acknowledgement(s), {} score(s).",
        carried.delivery, carried.scores
    );
    if carried.lost_sessions.is_empty() {
        println!("Every session of the old store was recovered.");
    } else {
        println!(
            "Not recovered: {} session(s) whose files are gone (they remain in the backup):",
            carried.lost_sessions.len()
        );
        for (key, file) in carried.lost_sessions.iter().take(20) {
            println!("  {key}  ({})", file.as_deref().unwrap_or("file unknown"));
        }
    }
    println!(
        "The old store is at {}; delete it when you are satisfied.",
        backup.display()
    );
    Ok(())
}
