//! `tokentrace ui`: import what is new, then serve the local dashboard ([`crate::ui`]).

use std::net::SocketAddr;

use anyhow::Result;
use clap::Args;

use super::{print_import_warnings, Context, SourceArgs};

#[derive(Debug, Args)]
#[command(after_help = "\
Pages: / (overview), /sessions, /session/KEY, /models; their JSON: /api/overview, /api/sessions,
/api/session/KEY, /api/models, /api/changes (filters in the query: since, until, agent, model, project,
channel, tz). Open pages update when the store changes (an import, or a `tokentrace watch` on the same store).
The dashboard is read-only and binds to 127.0.0.1; any other address needs --token (or TOKENTRACE_UI_TOKEN),
then every request must carry it: open http://HOST:PORT/?token=TOKEN once (it sets a cookie), or send
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
    #[command(flatten)]
    pub sources: SourceArgs,
}

pub fn run(ctx: &Context, args: UiArgs) -> Result<()> {
    // Refuse a public address without a token before doing any work.
    let opts = crate::ui::Options {
        listen: args.listen,
        token: args.token.clone(),
    };
    crate::ui::check_options(&opts)?;
    let store = if args.sources.no_import {
        ctx.open_store_read_only()?
    } else {
        let mut store = ctx.open_store()?;
        let summary = ctx.import(&mut store, &args.sources)?;
        print_import_warnings(&summary);
        drop(store);
        // The server reads through its own read-only connection.
        ctx.open_store_read_only()?
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
