//! `tokentrace metrics`: import what is new, then print the metric set in the Prometheus text format (what
//! `watch --metrics-listen` serves), for `promtool check metrics`, a node_exporter textfile collector or a
//! quick look.

use anyhow::Result;
use clap::Args;

use super::{print_import_warnings, Context, SourceArgs};
use crate::metrics::{collect, prometheus};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  tokentrace metrics                                   every series, computed from the store
  tokentrace metrics --no-import | promtool check metrics
  tokentrace metrics > /var/lib/node_exporter/textfile/tokentrace.prom
Series (OpenTelemetry names; Prometheus adds unit suffixes and _total): gen_ai.client.inference.usage.*
token counters, gen_ai.client.token.usage and gen_ai.client.operation.duration histograms, tokentrace.cost.usage
(USD), prompts, generations, generation errors, tool calls, tool errors, tool duration, sessions, session
duration. Labels: agent, model, provider, token type, tool, channel, user; never a session or trace id.")]
pub struct MetricsArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
}

pub fn run(ctx: &Context, args: MetricsArgs) -> Result<()> {
    let mut store = ctx.open_store()?;
    if !args.sources.no_import {
        let summary = ctx.import(&mut store, &args.sources)?;
        print_import_warnings(&summary);
    }
    print!("{}", prometheus::render(&collect::collect(&store)?));
    Ok(())
}
