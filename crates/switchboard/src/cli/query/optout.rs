//! `switchboard optout check`: asks the service that owns a product whether a number opted out.

use clap::{Subcommand, ValueEnum};
use switchboard_events::Product;
use switchboard_proto::chat::chat_service_client::ChatServiceClient;
use switchboard_proto::common::{CheckOptOutRequest, CheckOptOutResponse};
use switchboard_proto::sms::sms_service_client::SmsServiceClient;
use switchboard_proto::voice::voice_service_client::VoiceServiceClient;

use super::{channel, rpc_error};
use crate::cli::output::{Tone, proto_json, time};
use crate::cli::{CliContext, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptOutProduct {
    Sms,
    Whatsapp,
    Rcs,
    Voice,
}

#[derive(Debug, Subcommand)]
pub enum OptoutCommand {
    /// Whether a number opted out, for a sender or category (exit status 0 either way).
    #[command(
        after_help = "Examples:\n  switchboard optout check 917002088123 --sender DEMO12\n  switchboard optout check 919876543210 --product whatsapp --json"
    )]
    Check {
        /// The receiver's number (any formatting: +91 700-208 8123 works).
        number: String,
        #[arg(long, value_enum, default_value = "sms")]
        product: OptOutProduct,
        /// The sender id (sms) or number to check against.
        #[arg(long, default_value = "")]
        sender: String,
        /// A category (e.g. promotional) to check against.
        #[arg(long, default_value = "")]
        category: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

pub async fn run(cli: &CliContext, command: &OptoutCommand) -> anyhow::Result<()> {
    let OptoutCommand::Check { number, product, sender, category, endpoint } = command;
    let mut request = CheckOptOutRequest {
        receiver: number.clone(),
        sender: sender.clone(),
        category: category.clone(),
        channel: String::new(),
    };
    let answer: CheckOptOutResponse = match product {
        OptOutProduct::Sms => {
            let mut client = SmsServiceClient::new(channel(&endpoint.resolve(cli, Product::Sms)).await?);
            client.check_opt_out(request).await.map_err(rpc_error)?.into_inner()
        }
        OptOutProduct::Voice => {
            let mut client = VoiceServiceClient::new(channel(&endpoint.resolve(cli, Product::Voice)).await?);
            client.check_opt_out(request).await.map_err(rpc_error)?.into_inner()
        }
        OptOutProduct::Whatsapp | OptOutProduct::Rcs => {
            request.channel = if *product == OptOutProduct::Rcs { "rcs" } else { "whatsapp" }.to_owned();
            let mut client = ChatServiceClient::new(channel(&endpoint.resolve(cli, Product::Chat)).await?);
            client.check_opt_out(request).await.map_err(rpc_error)?.into_inner()
        }
    };
    let output = &cli.output;
    if output.json {
        return output.print_json(&proto_json(&answer, "switchboard.common.v1.CheckOptOutResponse")?);
    }
    let verdict = if answer.opted_out {
        output.tone("opted out", Tone::Bad)
    } else {
        output.tone("not opted out", Tone::Good)
    };
    let mut summary = output.table(&["NUMBER", "PRODUCT", "SENDER", "ANSWER"]);
    summary.add_row(vec![
        comfy_table::Cell::new(number),
        comfy_table::Cell::new(format!("{product:?}").to_lowercase()),
        comfy_table::Cell::new(sender),
        verdict,
    ]);
    output.print_table(&summary)?;
    if !answer.matches.is_empty() {
        let mut matches = output.table(&["ID", "CHANNEL", "TYPE", "VALUE", "CREATED"]);
        for opt_out in &answer.matches {
            matches.add_row(vec![
                opt_out.id.clone(),
                opt_out.channel.clone(),
                opt_out.r#type.clone(),
                opt_out.value.clone(),
                time(&opt_out.created_at),
            ]);
        }
        output.print_line("because of:")?;
        output.print_table(&matches)?;
    }
    Ok(())
}
