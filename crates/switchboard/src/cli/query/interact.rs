//! `switchboard interact get|list|keywords` (messages to virtual numbers).

use clap::{Args, Subcommand};
use switchboard_events::Product;
use switchboard_proto::interact::interact_service_client::InteractServiceClient;
use switchboard_proto::interact::{GetKeywordCountsRequest, GetMessageRequest, ListMessagesRequest};

use super::{Limit, Window, channel, collect, rpc_error};
use crate::cli::output::{clip, proto_json, proto_json_list, time};
use crate::cli::{CliContext, Endpoint};

#[derive(Debug, Args)]
pub struct InteractArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(subcommand)]
    pub command: Option<InteractCommand>,
}

#[derive(Debug, Subcommand)]
pub enum InteractCommand {
    /// One inbound message.
    #[command(after_help = "Example:\n  switchboard interact get our-message-id")]
    Get { id: String },
    /// Inbound messages by virtual number, sender, keyword and time (newest first).
    #[command(
        after_help = "Example:\n  switchboard interact list --virtual-number 919019120123 --keyword JOIN --since 7d"
    )]
    List {
        #[arg(long)]
        virtual_number: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        keyword: Option<String>,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        limit: Limit,
    },
    /// Messages per keyword per day.
    #[command(
        after_help = "Example:\n  switchboard interact keywords --days 30 --virtual-number 919019120123"
    )]
    Keywords {
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long)]
        virtual_number: Option<String>,
        #[command(flatten)]
        window: Window,
    },
}

pub async fn run(cli: &CliContext, endpoint: &Endpoint, command: &InteractCommand) -> anyhow::Result<()> {
    let mut client = InteractServiceClient::new(channel(&endpoint.resolve(cli, Product::Interact)).await?);
    let output = &cli.output;
    match command {
        InteractCommand::Get { id } => {
            let message = client
                .get_message(GetMessageRequest { id: id.clone() })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if output.json {
                return output.print_json(&proto_json(&message, "switchboard.interact.v1.Message")?);
            }
            output.print_table(&output.fields(&[
                ("id", message.id.clone()),
                ("virtual number", message.virtual_number.clone()),
                ("from", message.from.clone()),
                ("type", message.r#type.clone()),
                ("text", message.text.clone()),
                ("keyword", message.keyword1.clone()),
                ("second keyword", message.keyword2.clone()),
                ("received", time(&message.received_at)),
                ("stream sequence", message.stream_sequence.to_string()),
            ]))
        }
        InteractCommand::List { virtual_number, from, keyword, window, limit } => {
            let request = ListMessagesRequest {
                virtual_number: virtual_number.clone().unwrap_or_default(),
                from: from.clone().unwrap_or_default(),
                keyword: keyword.clone().unwrap_or_default(),
                received: window.range(),
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
                return output.print_json(&proto_json_list(&messages, "switchboard.interact.v1.Message")?);
            }
            let mut table = output.table(&["ID", "VIRTUAL NUMBER", "FROM", "KEYWORD", "TEXT", "RECEIVED"]);
            for message in &messages {
                table.add_row(vec![
                    message.id.clone(),
                    message.virtual_number.clone(),
                    message.from.clone(),
                    message.keyword1.clone(),
                    clip(&message.text, 40),
                    time(&message.received_at),
                ]);
            }
            output.print_table(&table)?;
            output.print_line(format!("{} message(s)", messages.len()))
        }
        InteractCommand::Keywords { days, virtual_number, window } => {
            let request = GetKeywordCountsRequest {
                virtual_number: virtual_number.clone().unwrap_or_default(),
                received: Some(window.or_days(*days)),
                utc_offset: String::new(),
            };
            let counts = client.get_keyword_counts(request).await.map_err(rpc_error)?.into_inner();
            if output.json {
                return output
                    .print_json(&proto_json(&counts, "switchboard.interact.v1.GetKeywordCountsResponse")?);
            }
            let mut table = output.table(&["DAY", "VIRTUAL NUMBER", "KEYWORD", "COUNT"]);
            for row in &counts.rows {
                table.add_row(vec![
                    row.day.clone(),
                    row.virtual_number.clone(),
                    row.keyword.clone(),
                    row.count.to_string(),
                ]);
            }
            output.print_table(&table)
        }
    }
}
