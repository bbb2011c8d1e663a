//! `switchboard chat get|list|conversation|rates` (WhatsApp and RCS).

use clap::{Args, Subcommand, ValueEnum};
use comfy_table::Cell;
use switchboard_events::Product;
use switchboard_proto::chat::chat_service_client::ChatServiceClient;
use switchboard_proto::chat::{
    GetConversationRequest, GetInboundMessageRequest, GetOutboundMessageRequest, GetRatesRequest,
    InboundMessage, ListInboundMessagesRequest, ListOutboundMessagesRequest, OutboundMessage,
    conversation_item,
};

use super::{Limit, Window, channel, collect, rpc_error};
use crate::cli::output::{Output, Tone, clip, percent, proto_json, proto_json_list, time};
use crate::cli::{CliContext, Endpoint};

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(subcommand)]
    pub command: Option<ChatCommand>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Channel {
    Whatsapp,
    Rcs,
}

impl Channel {
    fn name(channel: Option<Channel>) -> String {
        match channel {
            Some(Channel::Whatsapp) => "whatsapp".to_owned(),
            Some(Channel::Rcs) => "rcs".to_owned(),
            None => String::new(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// One message: outbound with its milestones, or inbound with --inbound.
    #[command(
        after_help = "Examples:\n  switchboard chat get our-message-id\n  switchboard chat get our-message-id --channel rcs --inbound --json"
    )]
    Get {
        id: String,
        #[arg(long, value_enum, default_value = "whatsapp")]
        channel: Channel,
        /// A message the customer sent us.
        #[arg(long)]
        inbound: bool,
    },
    /// Outbound messages by recipient, sender, status and time; inbound ones with --inbound.
    #[command(
        after_help = "Examples:\n  switchboard chat list --to 919019120123 --status read --since 7d\n  switchboard chat list --inbound --from 919876543210"
    )]
    List {
        /// Only this channel (default: both).
        #[arg(long, value_enum)]
        channel: Option<Channel>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        from: Option<String>,
        /// Outbound only: queued, sent, delivered, read, failed, …
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        inbound: bool,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        limit: Limit,
    },
    /// Everything exchanged with one phone number, in and out, in time order.
    #[command(after_help = "Example:\n  switchboard chat conversation 919876543210 --channel whatsapp")]
    Conversation {
        number: String,
        /// The conversation's channel (required: a number has one conversation per channel).
        #[arg(long, value_enum)]
        channel: Channel,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        limit: Limit,
    },
    /// Delivery and read rates per day and channel.
    #[command(after_help = "Example:\n  switchboard chat rates --days 7 --channel rcs")]
    Rates {
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long, value_enum)]
        channel: Option<Channel>,
        #[command(flatten)]
        window: Window,
    },
}

fn status_tone(status: &str) -> Tone {
    match status {
        "delivered" | "read" => Tone::Good,
        "failed" | "deleted" => Tone::Bad,
        _ => Tone::Waiting,
    }
}

pub async fn run(cli: &CliContext, endpoint: &Endpoint, command: &ChatCommand) -> anyhow::Result<()> {
    let mut client = ChatServiceClient::new(channel(&endpoint.resolve(cli, Product::Chat)).await?);
    let output = &cli.output;
    match command {
        ChatCommand::Get { id, channel, inbound: false } => {
            let request =
                GetOutboundMessageRequest { channel: Channel::name(Some(*channel)), id: id.clone() };
            let message = client.get_outbound_message(request).await.map_err(rpc_error)?.into_inner();
            if output.json {
                return output.print_json(&proto_json(&message, "switchboard.chat.v1.OutboundMessage")?);
            }
            print_outbound(output, &message)
        }
        ChatCommand::Get { id, channel, inbound: true } => {
            let request = GetInboundMessageRequest { channel: Channel::name(Some(*channel)), id: id.clone() };
            let message = client.get_inbound_message(request).await.map_err(rpc_error)?.into_inner();
            if output.json {
                return output.print_json(&proto_json(&message, "switchboard.chat.v1.InboundMessage")?);
            }
            print_inbound(output, &message)
        }
        ChatCommand::List { channel, to, from, status, inbound: false, window, limit } => {
            let request = ListOutboundMessagesRequest {
                channel: Channel::name(*channel),
                to: to.clone().unwrap_or_default(),
                from: from.clone().unwrap_or_default(),
                status: status.clone().unwrap_or_default(),
                time: window.range(),
                ..Default::default()
            };
            let messages = collect(limit.limit, |page_token, page_size| {
                let mut client = client.clone();
                let request = ListOutboundMessagesRequest { page_token, page_size, ..request.clone() };
                async move {
                    let page = client.list_outbound_messages(request).await?.into_inner();
                    Ok((page.messages, page.next_page_token))
                }
            })
            .await?;
            if output.json {
                return output
                    .print_json(&proto_json_list(&messages, "switchboard.chat.v1.OutboundMessage")?);
            }
            let mut table = output.table(&["CHANNEL", "ID", "TO", "STATUS", "STATUS AT"]);
            for message in &messages {
                table.add_row(vec![
                    Cell::new(&message.channel),
                    Cell::new(&message.id),
                    Cell::new(&message.to),
                    output.tone(&message.status, status_tone(&message.status)),
                    Cell::new(time(&message.status_at)),
                ]);
            }
            output.print_table(&table)?;
            output.print_line(format!("{} message(s)", messages.len()))
        }
        ChatCommand::List { channel, to, from, status: _, inbound: true, window, limit } => {
            let request = ListInboundMessagesRequest {
                channel: Channel::name(*channel),
                to: to.clone().unwrap_or_default(),
                from: from.clone().unwrap_or_default(),
                received: window.range(),
                ..Default::default()
            };
            let messages = collect(limit.limit, |page_token, page_size| {
                let mut client = client.clone();
                let request = ListInboundMessagesRequest { page_token, page_size, ..request.clone() };
                async move {
                    let page = client.list_inbound_messages(request).await?.into_inner();
                    Ok((page.messages, page.next_page_token))
                }
            })
            .await?;
            if output.json {
                return output.print_json(&proto_json_list(&messages, "switchboard.chat.v1.InboundMessage")?);
            }
            let mut table = output.table(&["CHANNEL", "ID", "FROM", "TO", "TYPE", "TEXT", "RECEIVED"]);
            for message in &messages {
                table.add_row(vec![
                    message.channel.clone(),
                    message.id.clone(),
                    message.from.clone(),
                    message.to.clone(),
                    message.r#type.clone(),
                    clip(&message.text, 40),
                    time(&message.received_at),
                ]);
            }
            output.print_table(&table)?;
            output.print_line(format!("{} message(s)", messages.len()))
        }
        ChatCommand::Conversation { number, channel, window, limit } => {
            let request = GetConversationRequest {
                channel: Channel::name(Some(*channel)),
                phone_number: number.clone(),
                time: window.range(),
                ..Default::default()
            };
            let items = collect(limit.limit, |page_token, page_size| {
                let mut client = client.clone();
                let request = GetConversationRequest { page_token, page_size, ..request.clone() };
                async move {
                    let page = client.get_conversation(request).await?.into_inner();
                    Ok((page.items, page.next_page_token))
                }
            })
            .await?;
            if output.json {
                return output.print_json(&proto_json_list(&items, "switchboard.chat.v1.ConversationItem")?);
            }
            let mut table = output.table(&["TIME", "DIRECTION", "CHANNEL", "ID", "STATUS / TEXT"]);
            for item in &items {
                let row = match &item.item {
                    Some(conversation_item::Item::Outbound(message)) => vec![
                        Cell::new(time(&item.time)),
                        Cell::new("out"),
                        Cell::new(&message.channel),
                        Cell::new(&message.id),
                        output.tone(&message.status, status_tone(&message.status)),
                    ],
                    Some(conversation_item::Item::Inbound(message)) => vec![
                        Cell::new(time(&item.time)),
                        Cell::new("in"),
                        Cell::new(&message.channel),
                        Cell::new(&message.id),
                        Cell::new(clip(&message.text, 50)),
                    ],
                    None => continue,
                };
                table.add_row(row);
            }
            output.print_table(&table)?;
            output.print_line(format!("{} item(s)", items.len()))
        }
        ChatCommand::Rates { days, channel, window } => {
            let request = GetRatesRequest {
                channel: Channel::name(*channel),
                time: Some(window.or_days(*days)),
                utc_offset: String::new(),
            };
            let rates = client.get_rates(request).await.map_err(rpc_error)?.into_inner();
            if output.json {
                return output.print_json(&proto_json(&rates, "switchboard.chat.v1.GetRatesResponse")?);
            }
            let mut table = output.table(&[
                "DAY",
                "CHANNEL",
                "TOTAL",
                "DELIVERED",
                "READ",
                "FAILED",
                "DELIVERY",
                "READ RATE",
            ]);
            for row in &rates.rows {
                table.add_row(vec![
                    row.day.clone(),
                    row.channel.clone(),
                    row.total.to_string(),
                    row.delivered.to_string(),
                    row.read.to_string(),
                    row.failed.to_string(),
                    percent(row.delivery_rate),
                    percent(row.read_rate),
                ]);
            }
            output.print_table(&table)
        }
    }
}

fn print_outbound(output: &Output, message: &OutboundMessage) -> anyhow::Result<()> {
    output.print_table(&output.fields(&[
        ("channel", message.channel.clone()),
        ("id", message.id.clone()),
        ("from", message.from.clone()),
        ("to", message.to.clone()),
        ("status", message.status.clone()),
        ("foreign id", message.foreign_id.clone()),
        ("processed", time(&message.processed_at)),
        ("sent", time(&message.sent_at)),
        ("delivered", time(&message.delivered_at)),
        ("read", time(&message.read_at)),
        ("failed", time(&message.failed_at)),
        ("deleted", time(&message.deleted_at)),
        ("stream sequence", message.stream_sequence.to_string()),
    ]))?;
    let mut history = output.table(&["STATUS", "AT", "RECEIVED", "SEQUENCE"]);
    for event in &message.history {
        history.add_row(vec![
            output.tone(&event.status, status_tone(&event.status)),
            Cell::new(time(&event.timestamp)),
            Cell::new(time(&event.received_at)),
            Cell::new(event.stream_sequence),
        ]);
    }
    output.print_line("history:")?;
    output.print_table(&history)
}

fn print_inbound(output: &Output, message: &InboundMessage) -> anyhow::Result<()> {
    let profile = message.profile.clone().unwrap_or_default();
    output.print_table(&output.fields(&[
        ("channel", message.channel.clone()),
        ("id", message.id.clone()),
        ("from", message.from.clone()),
        ("to", message.to.clone()),
        ("type", message.r#type.clone()),
        ("text", message.text.clone()),
        ("url", message.url.clone()),
        ("caption", message.caption.clone()),
        ("file", message.filename.clone()),
        ("name", format!("{} {}", profile.first_name, profile.last_name).trim().to_owned()),
        ("received", time(&message.received_at)),
        ("stream sequence", message.stream_sequence.to_string()),
    ]))
}
