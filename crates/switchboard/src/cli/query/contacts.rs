//! `switchboard contacts get|list|history`.

use clap::{Args, Subcommand};
use switchboard_events::Product;
use switchboard_proto::contacts::contacts_service_client::ContactsServiceClient;
use switchboard_proto::contacts::{
    AttributeFilter, Contact, GetContactRequest, ListContactVersionsRequest, ListContactsRequest,
    get_contact_request::Lookup,
};
use tonic::transport::Channel;

use super::{Limit, channel, collect, parse_time, rpc_error};
use crate::cli::output::{Output, proto_json, proto_json_list, time};
use crate::cli::{CliContext, Endpoint};

#[derive(Debug, Args)]
pub struct ContactsArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(subcommand)]
    pub command: Option<ContactsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// A contact's current version, by identity (phone number or e-mail) or --id.
    #[command(
        after_help = "Examples:\n  switchboard contacts get 919876543210\n  switchboard contacts get 42 --id --json"
    )]
    Get {
        identity: String,
        /// The argument is the provider's contact id, not an identity.
        #[arg(long)]
        id: bool,
    },
    /// Contacts by name or identity prefix, attributes, and update time.
    #[command(
        after_help = "Example:\n  switchboard contacts list --name Ra --attr city=Pune --updated-since 7d"
    )]
    List {
        /// First or last name starting with this.
        #[arg(long)]
        name: Option<String>,
        /// Identity starting with this.
        #[arg(long)]
        identity: Option<String>,
        /// An attribute `key=value` (repeatable; all must match).
        #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attribute)]
        attributes: Vec<AttributeFilter>,
        #[arg(long, value_parser = parse_time)]
        updated_since: Option<prost_types::Timestamp>,
        #[command(flatten)]
        limit: Limit,
    },
    /// Every version of a contact, newest first.
    #[command(after_help = "Example:\n  switchboard contacts history 919876543210")]
    History {
        identity: String,
        #[arg(long)]
        id: bool,
        #[command(flatten)]
        limit: Limit,
    },
}

fn parse_attribute(text: &str) -> Result<AttributeFilter, String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    Ok(AttributeFilter { key: key.to_owned(), value: value.to_owned() })
}

async fn get(
    client: &mut ContactsServiceClient<Channel>,
    identity: &str,
    by_id: bool,
) -> anyhow::Result<Contact> {
    let lookup = if by_id { Lookup::Id(identity.to_owned()) } else { Lookup::Identity(identity.to_owned()) };
    Ok(client.get_contact(GetContactRequest { lookup: Some(lookup) }).await.map_err(rpc_error)?.into_inner())
}

pub async fn run(cli: &CliContext, endpoint: &Endpoint, command: &ContactsCommand) -> anyhow::Result<()> {
    let mut client = ContactsServiceClient::new(channel(&endpoint.resolve(cli, Product::Contacts)).await?);
    let output = &cli.output;
    match command {
        ContactsCommand::Get { identity, id } => {
            let contact = get(&mut client, identity, *id).await?;
            if output.json {
                return output.print_json(&proto_json(&contact, "switchboard.contacts.v1.Contact")?);
            }
            print_contact(output, &contact)
        }
        ContactsCommand::List { name, identity, attributes, updated_since, limit } => {
            let request = ListContactsRequest {
                name_prefix: name.clone().unwrap_or_default(),
                identity_prefix: identity.clone().unwrap_or_default(),
                attributes: attributes.clone(),
                updated_since: *updated_since,
                ..Default::default()
            };
            let contacts = collect(limit.limit, |page_token, page_size| {
                let mut client = client.clone();
                let request = ListContactsRequest { page_token, page_size, ..request.clone() };
                async move {
                    let page = client.list_contacts(request).await?.into_inner();
                    Ok((page.contacts, page.next_page_token))
                }
            })
            .await?;
            if output.json {
                return output.print_json(&proto_json_list(&contacts, "switchboard.contacts.v1.Contact")?);
            }
            print_contacts(output, &contacts)?;
            output.print_line(format!("{} contact(s)", contacts.len()))
        }
        ContactsCommand::History { identity, id, limit } => {
            let contact_id = get(&mut client, identity, *id).await?.id;
            let versions = collect(limit.limit, |page_token, page_size| {
                let mut client = client.clone();
                let request = ListContactVersionsRequest { id: contact_id.clone(), page_size, page_token };
                async move {
                    let page = client.list_contact_versions(request).await?.into_inner();
                    Ok((page.versions, page.next_page_token))
                }
            })
            .await?;
            if output.json {
                return output.print_json(&proto_json_list(&versions, "switchboard.contacts.v1.Contact")?);
            }
            print_contacts(output, &versions)?;
            output.print_line(format!("{} version(s)", versions.len()))
        }
    }
}

fn full_name(contact: &Contact) -> String {
    [contact.first_name.as_str(), contact.middle_name.as_str(), contact.last_name.as_str()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_contacts(output: &Output, contacts: &[Contact]) -> anyhow::Result<()> {
    let mut table = output.table(&["ID", "IDENTITY", "NAME", "STATUS", "UPDATED", "SEQUENCE"]);
    for contact in contacts {
        table.add_row(vec![
            contact.id.clone(),
            contact.identity.clone(),
            full_name(contact),
            contact.status.clone(),
            time(&contact.updated_at),
            contact.stream_sequence.to_string(),
        ]);
    }
    output.print_table(&table)
}

fn print_contact(output: &Output, contact: &Contact) -> anyhow::Result<()> {
    let mut attributes: Vec<_> = contact.attributes.iter().collect();
    attributes.sort();
    let attributes =
        attributes.into_iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("\n");
    output.print_table(&output.fields(&[
        ("id", contact.id.clone()),
        ("identity", contact.identity.clone()),
        ("name", full_name(contact)),
        ("gender", contact.gender.clone()),
        ("birth date", contact.birth_date.clone()),
        ("company", contact.company.clone()),
        ("status", contact.status.clone()),
        ("attributes", attributes),
        ("created", time(&contact.created_at)),
        ("updated", time(&contact.updated_at)),
        ("stream sequence", contact.stream_sequence.to_string()),
    ]))
}
