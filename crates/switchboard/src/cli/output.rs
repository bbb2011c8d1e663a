//! How operator commands print: tables for people (coloured only on a terminal, never with
//! `NO_COLOR`), JSON for scripts. gRPC records become JSON through their descriptors (the proto3 JSON
//! mapping, with the `.proto` field names), so every field is printed without hand-written code.

use std::io::{IsTerminal, Write};
use std::sync::LazyLock;

use anyhow::Context as _;
use comfy_table::presets::{NOTHING, UTF8_FULL_CONDENSED};
use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use prost_types::Timestamp;
use time::OffsetDateTime;
use time::macros::format_description;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    styled: bool,
}

/// How a status reads at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Waiting,
    Plain,
}

impl Output {
    pub fn new(json: bool) -> Output {
        let styled = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Output { json, styled }
    }

    pub fn styled(&self) -> bool {
        self.styled
    }

    /// A table with a bold header row.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        if self.styled {
            table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            // Plain columns, like other operator tools print for pipes and logs.
            table.load_preset(NOTHING).force_no_tty();
        }
        table.set_header(header.iter().map(|title| Cell::new(title).add_attribute(Attribute::Bold)));
        table
    }

    /// A two-column table of a record's fields, skipping empty values.
    pub fn fields(&self, fields: &[(&str, String)]) -> Table {
        let mut table = self.table(&["FIELD", "VALUE"]);
        for (name, value) in fields {
            if !value.is_empty() {
                table.add_row(vec![Cell::new(name), Cell::new(value)]);
            }
        }
        table
    }

    pub fn tone(&self, text: impl Into<String>, tone: Tone) -> Cell {
        let cell = Cell::new(text.into());
        match tone {
            Tone::Good => cell.fg(Color::Green),
            Tone::Bad => cell.fg(Color::Red),
            Tone::Waiting => cell.fg(Color::Yellow),
            Tone::Plain => cell,
        }
    }

    /// Prints a table; without styling (a pipe), its lines carry no trailing padding.
    pub fn print_table(&self, table: &Table) -> anyhow::Result<()> {
        if self.styled() {
            writeln!(std::io::stdout(), "{table}")?;
        } else {
            let mut stdout = std::io::stdout().lock();
            for line in table.lines() {
                writeln!(stdout, "{}", line.trim_end())?;
            }
        }
        Ok(())
    }

    pub fn print_line(&self, line: impl std::fmt::Display) -> anyhow::Result<()> {
        writeln!(std::io::stdout(), "{line}")?;
        Ok(())
    }

    pub fn print_json(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, value)?;
        writeln!(stdout)?;
        Ok(())
    }
}

/// Every Switchboard message type, for printing records as JSON.
static DESCRIPTORS: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(switchboard_proto::FILE_DESCRIPTOR_SET).map_err(|error| error.to_string())
});

/// A gRPC message as JSON. `full_name` is its protobuf name, e.g. `switchboard.sms.v1.Message`.
/// Every field is present (defaults included), 64-bit integers are numbers, enums are names.
pub fn proto_json<M: prost::Message>(message: &M, full_name: &str) -> anyhow::Result<serde_json::Value> {
    let pool = DESCRIPTORS.as_ref().map_err(|error| anyhow::anyhow!("proto descriptors: {error}"))?;
    let descriptor =
        pool.get_message_by_name(full_name).with_context(|| format!("no message {full_name}"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .with_context(|| format!("re-decoding {full_name}"))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    Ok(dynamic.serialize_with_options(serde_json::value::Serializer, &options)?)
}

/// Several messages of one type as a JSON array.
pub fn proto_json_list<M: prost::Message>(
    messages: &[M],
    full_name: &str,
) -> anyhow::Result<serde_json::Value> {
    messages
        .iter()
        .map(|message| proto_json(message, full_name))
        .collect::<anyhow::Result<Vec<_>>>()
        .map(serde_json::Value::Array)
}

/// A timestamp as `2021-04-09 10:57:51Z` (UTC), or empty.
pub fn time(timestamp: &Option<Timestamp>) -> String {
    let Some(timestamp) = timestamp else { return String::new() };
    match OffsetDateTime::from_unix_timestamp(timestamp.seconds) {
        Ok(moment) => moment_text(moment),
        Err(_) => timestamp.seconds.to_string(),
    }
}

/// A moment as `2021-04-09 10:57:51Z` (UTC): one width in every row of a table.
pub fn moment_text(moment: OffsetDateTime) -> String {
    moment
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z"))
        .unwrap_or_default()
}

/// An optional integer, or empty.
pub fn optional<T: ToString>(value: Option<T>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

/// A rate in 0..=1 as a percentage.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// Text cut to `width` characters for a table cell.
pub fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_json_with_every_field() {
        let message = switchboard_proto::sms::Message {
            id: "a:1".into(),
            units: Some(2),
            stream_sequence: 7,
            status_class: switchboard_proto::sms::StatusClass::Delivered as i32,
            ..Default::default()
        };
        let json = proto_json(&message, "switchboard.sms.v1.Message").expect("json");
        assert_eq!(json["id"], "a:1");
        assert_eq!(json["units"], 2);
        assert_eq!(json["stream_sequence"], 7);
        assert_eq!(json["status_class"], "STATUS_CLASS_DELIVERED");
        assert_eq!(json["mobile"], "");
    }

    #[test]
    fn times_and_text_read_well() {
        assert_eq!(time(&Some(Timestamp { seconds: 1_617_965_871, nanos: 0 })), "2021-04-09 10:57:51Z");
        assert_eq!(time(&None), "");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(percent(0.5), "50.0%");
    }
}
