//! `switchboard voice get|calls|stats`.

use clap::{Args, Subcommand};
use comfy_table::Cell;
use switchboard_events::Product;
use switchboard_proto::voice::voice_service_client::VoiceServiceClient;
use switchboard_proto::voice::{GetCallRequest, GetCallStatsRequest, ListCallsRequest};

use super::{Limit, Window, channel, collect, rpc_error};
use crate::cli::output::{Tone, optional, percent, proto_json, proto_json_list, time};
use crate::cli::{CliContext, Endpoint};

#[derive(Debug, Args)]
pub struct VoiceArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(subcommand)]
    pub command: Option<VoiceCommand>,
}

#[derive(Debug, Subcommand)]
pub enum VoiceCommand {
    /// One call detail record.
    #[command(after_help = "Example:\n  switchboard voice get 6083a0a3e09ad --json")]
    Get {
        /// The call's `mid`.
        mid: String,
    },
    /// Calls by number, status, source, flow and start time (newest first).
    #[command(
        after_help = "Example:\n  switchboard voice calls --number 919876543210 --status ANSWER --since 24h"
    )]
    Calls {
        /// Caller or callee.
        #[arg(long)]
        number: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        flow: Option<String>,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        limit: Limit,
    },
    /// Answer rate and talk time per day and source.
    #[command(after_help = "Example:\n  switchboard voice stats --days 7")]
    Stats {
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        window: Window,
    },
}

fn status_tone(status: &str) -> Tone {
    match status.to_ascii_uppercase().as_str() {
        "ANSWER" | "ANSWERED" | "COMPLETED" => Tone::Good,
        "" => Tone::Plain,
        _ => Tone::Bad,
    }
}

pub async fn run(cli: &CliContext, endpoint: &Endpoint, command: &VoiceCommand) -> anyhow::Result<()> {
    let mut client = VoiceServiceClient::new(channel(&endpoint.resolve(cli, Product::Voice)).await?);
    let output = &cli.output;
    match command {
        VoiceCommand::Get { mid } => {
            let call =
                client.get_call(GetCallRequest { mid: mid.clone() }).await.map_err(rpc_error)?.into_inner();
            if output.json {
                return output.print_json(&proto_json(&call, "switchboard.voice.v1.Call")?);
            }
            output.print_table(&output.fields(&[
                ("mid", call.mid.clone()),
                ("from", call.from.clone()),
                ("to", call.to.clone()),
                ("status", call.status.clone()),
                ("source", call.source.clone()),
                ("flow", call.flow_id.clone()),
                ("bridge", call.bridge.clone()),
                ("started", time(&call.start_at)),
                ("ended", time(&call.end_at)),
                ("duration (s)", optional(call.duration_seconds)),
                ("hung up by", call.hangup_by.clone()),
                ("recording", call.recording_url.clone()),
                ("billing", call.billing.clone()),
                ("stream sequence", call.stream_sequence.to_string()),
            ]))
        }
        VoiceCommand::Calls { number, status, source, flow, window, limit } => {
            let request = ListCallsRequest {
                number: number.clone().unwrap_or_default(),
                status: status.clone().unwrap_or_default(),
                source: source.clone().unwrap_or_default(),
                flow_id: flow.clone().unwrap_or_default(),
                started: window.range(),
                ..Default::default()
            };
            let calls = collect(limit.limit, |page_token, page_size| {
                let mut client = client.clone();
                let request = ListCallsRequest { page_token, page_size, ..request.clone() };
                async move {
                    let page = client.list_calls(request).await?.into_inner();
                    Ok((page.calls, page.next_page_token))
                }
            })
            .await?;
            if output.json {
                return output.print_json(&proto_json_list(&calls, "switchboard.voice.v1.Call")?);
            }
            let mut table = output.table(&["MID", "FROM", "TO", "STATUS", "SOURCE", "STARTED", "SECONDS"]);
            for call in &calls {
                table.add_row(vec![
                    Cell::new(&call.mid),
                    Cell::new(&call.from),
                    Cell::new(&call.to),
                    output.tone(&call.status, status_tone(&call.status)),
                    Cell::new(&call.source),
                    Cell::new(time(&call.start_at)),
                    Cell::new(optional(call.duration_seconds)),
                ]);
            }
            output.print_table(&table)?;
            output.print_line(format!("{} call(s)", calls.len()))
        }
        VoiceCommand::Stats { days, source, window } => {
            let request = GetCallStatsRequest {
                started: Some(window.or_days(*days)),
                source: source.clone().unwrap_or_default(),
                utc_offset: String::new(),
            };
            let stats = client.get_call_stats(request).await.map_err(rpc_error)?.into_inner();
            if output.json {
                return output.print_json(&proto_json(&stats, "switchboard.voice.v1.GetCallStatsResponse")?);
            }
            let mut table = output.table(&[
                "DAY",
                "SOURCE",
                "CALLS",
                "ANSWERED",
                "ANSWER RATE",
                "TALK (s)",
                "AVERAGE (s)",
            ]);
            for row in &stats.rows {
                table.add_row(vec![
                    row.day.clone(),
                    row.source.clone(),
                    row.calls.to_string(),
                    row.answered.to_string(),
                    percent(row.answer_rate),
                    row.total_duration_seconds.to_string(),
                    format!("{:.1}", row.average_duration_seconds),
                ]);
            }
            output.print_table(&table)
        }
    }
}
