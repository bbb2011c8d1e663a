//! `switchboard sms get|list|report`.

use clap::{Args, Subcommand};
use switchboard_events::Product;
use switchboard_proto::sms::sms_service_client::SmsServiceClient;
use switchboard_proto::sms::{
    GetDeliveryReportRequest, GetMessageRequest, ListMessagesRequest, Message, StatusClass,
};

use super::{Limit, Window, channel, collect, rpc_error};
use crate::cli::output::{Output, Tone, optional, percent, proto_json, proto_json_list, time};
use crate::cli::{CliContext, Endpoint};

#[derive(Debug, Args)]
pub struct SmsArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(subcommand)]
    pub command: Option<SmsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum SmsCommand {
    /// One message with its status history.
    #[command(after_help = "Example:\n  switchboard sms get b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1 --json")]
    Get {
        /// The message id (`<request uuid>:<recipient index>`).
        id: String,
    },
    /// Messages by mobile, status, sender, campaign fields and time sent (newest first).
    #[command(
        after_help = "Example:\n  switchboard sms list --mobile 918921269123 --status DELIVRD --since 24h"
    )]
    List {
        #[arg(long)]
        mobile: Option<String>,
        /// A provider status code, e.g. DELIVRD.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        sender: Option<String>,
        #[arg(long)]
        cid: Option<String>,
        #[arg(long)]
        custom: Option<String>,
        /// The request uuid (every recipient of one send).
        #[arg(long)]
        request_id: Option<String>,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        limit: Limit,
    },
    /// Delivery report: messages per status per day, and the delivery rate.
    #[command(after_help = "Example:\n  switchboard sms report --days 7 --sender DEMO12")]
    Report {
        /// The last this many days (unless --since is given).
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long)]
        sender: Option<String>,
        #[command(flatten)]
        window: Window,
    },
}

pub fn status_tone(class: i32) -> Tone {
    match StatusClass::try_from(class) {
        Ok(StatusClass::Delivered) => Tone::Good,
        Ok(StatusClass::Failed) => Tone::Bad,
        Ok(StatusClass::Pending | StatusClass::Timeout) => Tone::Waiting,
        _ => Tone::Plain,
    }
}

pub async fn run(cli: &CliContext, endpoint: &Endpoint, command: &SmsCommand) -> anyhow::Result<()> {
    let mut client = SmsServiceClient::new(channel(&endpoint.resolve(cli, Product::Sms)).await?);
    let output = &cli.output;
    match command {
        SmsCommand::Get { id } => {
            let message = client
                .get_message(GetMessageRequest { id: id.clone() })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if output.json {
                return output.print_json(&proto_json(&message, "switchboard.sms.v1.Message")?);
            }
            print_message(output, &message)
        }
        SmsCommand::List { mobile, status, sender, cid, custom, request_id, window, limit } => {
            let request = ListMessagesRequest {
                mobile: mobile.clone().unwrap_or_default(),
                status: status.clone().unwrap_or_default(),
                sender: sender.clone().unwrap_or_default(),
                cid: cid.clone().unwrap_or_default(),
                custom: custom.clone().unwrap_or_default(),
                request_id: request_id.clone().unwrap_or_default(),
                sent: window.range(),
                ..Default::default()
            };
            let messages = collect(limit.limit, |page_token, page_size| {
                let mut client = client.clone();
                let request = ListMessagesRequest { page_token, page_size, ..request.clone() };
                async move {
                    let page = client.list_messages(request).await?.into_inner();
                    Ok((page.messages, page.next_page_token))
                }
            })
            .await?;
            if output.json {
                return output.print_json(&proto_json_list(&messages, "switchboard.sms.v1.Message")?);
            }
            let mut table = output.table(&["ID", "MOBILE", "STATUS", "SENDER", "SENT", "DELIVERED"]);
            for message in &messages {
                table.add_row(vec![
                    comfy_table::Cell::new(&message.id),
                    comfy_table::Cell::new(&message.mobile),
                    output.tone(&message.status, status_tone(message.status_class)),
                    comfy_table::Cell::new(&message.sender),
                    comfy_table::Cell::new(time(&message.sent_at)),
                    comfy_table::Cell::new(time(&message.delivered_at)),
                ]);
            }
            output.print_table(&table)?;
            output.print_line(format!("{} message(s)", messages.len()))
        }
        SmsCommand::Report { days, sender, window } => {
            let request = GetDeliveryReportRequest {
                sent: Some(window.or_days(*days)),
                sender: sender.clone().unwrap_or_default(),
                utc_offset: String::new(),
            };
            let report = client.get_delivery_report(request).await.map_err(rpc_error)?.into_inner();
            if output.json {
                return output
                    .print_json(&proto_json(&report, "switchboard.sms.v1.GetDeliveryReportResponse")?);
            }
            let mut table =
                output.table(&["DAY", "TOTAL", "DELIVERED", "FAILED", "PENDING", "TIMEOUT", "DELIVERY RATE"]);
            for day in &report.days {
                table.add_row(vec![
                    day.day.clone(),
                    day.total.to_string(),
                    day.delivered.to_string(),
                    day.failed.to_string(),
                    day.pending.to_string(),
                    day.timeout.to_string(),
                    percent(day.delivery_rate),
                ]);
            }
            output.print_table(&table)?;
            let mut by_status = output.table(&["DAY", "SENDER", "STATUS", "COUNT"]);
            for row in &report.rows {
                by_status.add_row(vec![
                    comfy_table::Cell::new(&row.day),
                    comfy_table::Cell::new(&row.sender),
                    output.tone(&row.status, status_tone(row.status_class)),
                    comfy_table::Cell::new(row.count),
                ]);
            }
            output.print_table(&by_status)?;
            output.print_line(format!("days in UTC{}", report.utc_offset))
        }
    }
}

fn print_message(output: &Output, message: &Message) -> anyhow::Result<()> {
    let table = output.fields(&[
        ("id", message.id.clone()),
        ("mobile", message.mobile.clone()),
        ("status", message.status.clone()),
        ("sender", message.sender.clone()),
        ("credits", message.credits.clone()),
        ("units", optional(message.units)),
        ("cid", message.cid.clone()),
        ("custom", message.custom.clone()),
        ("submitted", time(&message.submitted_at)),
        ("sent", time(&message.sent_at)),
        ("delivered", time(&message.delivered_at)),
        ("first received", time(&message.first_received_at)),
        ("last received", time(&message.last_received_at)),
        ("stream sequence", message.stream_sequence.to_string()),
    ]);
    output.print_table(&table)?;
    let mut history = output.table(&["STATUS", "DELIVERED", "RECEIVED", "SEQUENCE"]);
    for event in &message.history {
        history.add_row(vec![
            output.tone(&event.status, status_tone(event.status_class)),
            comfy_table::Cell::new(time(&event.delivered_at)),
            comfy_table::Cell::new(time(&event.received_at)),
            comfy_table::Cell::new(event.stream_sequence),
        ]);
    }
    output.print_line("history:")?;
    output.print_table(&history)
}
