//! `tokentrace ui`: import what is new, then serve the local dashboard ([`crate::ui`]).

use std::net::SocketAddr;

use anyhow::Result;
use clap::Args;

use super::{print_import_warnings, Context, Global, SourceArgs};

#[derive(Debug, Args)]
#[command(after_help = "\
Pages: / (overview), /sessions, /session/KEY, /models. Their JSON: /api/overview, /api/sessions, /api/session/KEY, \
/api/models, /api/changes; filters in the query: since, until, agent, model, project, channel, tz.

Open pages update when the store changes: an import, a `tokentrace watch` on the same store, or --watch.

The dashboard is read-only and binds to 127.0.0.1. Any other address needs --token (or TOKENTRACE_UI_TOKEN), and \
then every request must carry it: open http://HOST:PORT/?token=TOKEN once (it sets a cookie), or send \
`Authorization: Bearer TOKEN`.")]
pub struct UiArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Token every request must carry; required when --listen is not a loopback address. Use letters,
    /// digits, `-` and `_` (it travels in a URL once).
    #[arg(
        long,
        env = "TOKENTRACE_UI_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Open the dashboard in the default browser (xdg-open) once it is served.
    #[arg(long)]
    pub open: bool,
    /// Also run `tokentrace watch` in this process (same sources; backends and metrics as configured), so
    /// open pages follow the agents live. Ctrl-C stops both, after the watch delivered what is pending.
    #[arg(long, conflicts_with = "no_import")]
    pub watch: bool,
    #[command(flatten)]
    pub sources: SourceArgs,
}

pub fn run(global: &Global, ctx: &Context, args: UiArgs) -> Result<()> {
    // Refuse a public address without a token before doing any work.
    let opts = crate::ui::Options {
        listen: args.listen,
        token: args.token.clone(),
    };
    crate::ui::check_options(&opts)?;
    let store = if args.watch {
        // The watch imports (its first pass reads everything new); the store must exist before the server's
        // read-only connection opens it.
        drop(ctx.open_store()?);
        let watch_args = super::watch::WatchArgs {
            source: args.sources.source.clone(),
            path: args.sources.path.clone(),
            rescan: 60,
            shutdown_timeout: 10,
            status_interval: 300,
            metrics_listen: None,
            metrics_compat: Vec::new(),
        };
        let (global, watch_ctx) = (global.clone(), Context::new(global)?);
        std::thread::Builder::new()
            .name("tt-watch".into())
            .spawn(move || {
                // The watch owns the signals: when it has stopped (Ctrl-C), so does the dashboard.
                let code = match super::watch::run(&global, watch_ctx, watch_args) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("tokentrace: watch stopped: {e:#}");
                        1
                    }
                };
                std::process::exit(code);
            })?;
        ctx.open_store_read_only()?
    } else if args.sources.no_import {
        ctx.open_store_read_only()?
    } else {
        let mut store = ctx.open_store()?;
        let summary = ctx.import(&mut store, &args.sources)?;
        print_import_warnings(&summary);
        if ctx.ephemeral {
            // The in-memory store is the only copy: serve it.
            store
        } else {
            // The server reads through its own read-only connection.
            drop(store);
            ctx.open_store_read_only()?
        }
    };
    let pricer = ctx.enricher()?.pricer().clone();
    let open = args.open;
    let with_token = args.token.is_some();
    crate::ui::serve(store, pricer, opts, |addr| {
        let url = format!("http://{addr}/");
        eprintln!(
            "tokentrace: dashboard at {url}{} (Ctrl-C stops)",
            if with_token { "?token=…" } else { "" }
        );
        if open {
            if let Err(e) = std::process::Command::new("xdg-open").arg(&url).spawn() {
                eprintln!("tokentrace: cannot open a browser ({e}); open {url} yourself");
            }
        }
    })
}
