//! The interact table: writing a batch of inbound messages, and the queries behind the API.

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{
    BindValue as _, Conditions, Database, Keyset, MigrationFiles, Table, columns, epoch_day_sql,
};

pub const MIGRATIONS: &[MigrationFiles] = &[
    MigrationFiles {
        version: 1,
        description: "messages to virtual numbers",
        sqlite: include_str!("../migrations/sqlite/0001_messages.sql"),
        postgres: include_str!("../migrations/postgres/0001_messages.sql"),
    },
    switchboard_store::BYTEWISE_TEXT,
];

/// The tables the service writes.
pub const TABLES: &[&dyn switchboard_store::TableShape] = &[&MESSAGES];

/// What the retention job may expire: the raw JSON of old messages (the messages themselves are the
/// current state and are kept).
pub const RETENTION: &[switchboard_service::retention::Target] =
    &[switchboard_service::retention::Target::clear_raw_json(&MESSAGES, "received_at")];

/// The profile the provider sends with the message (`recipient.user`), as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileRow {
    pub id: Option<String>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub picture: Option<String>,
    pub gender: Option<String>,
    pub title: Option<String>,
}

impl ProfileRow {
    fn fields(&self) -> [&Option<String>; 9] {
        [
            &self.id,
            &self.username,
            &self.first_name,
            &self.last_name,
            &self.email,
            &self.phone,
            &self.picture,
            &self.gender,
            &self.title,
        ]
    }

    /// Whether the message came with no profile at all.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|field| field.is_none())
    }
}

/// One inbound message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub virtual_number: String,
    pub sender: String,
    pub message_type: Option<String>,
    pub text: Option<String>,
    pub keyword1: String,
    pub keyword2: String,
    pub profile: ProfileRow,
    pub message_id: Option<String>,
    pub message_at: Option<i64>,
    pub payload_json: String,
    pub received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

switchboard_store::delivered!(MessageRow);

/// One row per message id, at its earliest delivery.
const MESSAGES: Table<MessageRow> = Table {
    name: "vmn_messages",
    key: &["id"],
    columns: columns!(MessageRow {
        id,
        virtual_number,
        sender,
        message_type,
        text,
        keyword1,
        keyword2,
        profile_id: |query, row| row.profile.id.bind_to(query),
        profile_username: |query, row| row.profile.username.bind_to(query),
        profile_first_name: |query, row| row.profile.first_name.bind_to(query),
        profile_last_name: |query, row| row.profile.last_name.bind_to(query),
        profile_email: |query, row| row.profile.email.bind_to(query),
        profile_phone: |query, row| row.profile.phone.bind_to(query),
        profile_picture: |query, row| row.profile.picture.bind_to(query),
        profile_gender: |query, row| row.profile.gender.bind_to(query),
        profile_title: |query, row| row.profile.title.bind_to(query),
        message_id,
        message_at,
        payload_json,
        received_at,
        stream_sequence,
        raw_json,
    }),
};

/// Writes a batch of messages inside the caller's transaction and returns the rows that were
/// inserted or replaced (for watchers).
pub async fn write_messages(
    connection: &mut AnyConnection,
    messages: &[MessageRow],
) -> Result<Vec<MessageRow>, sqlx::Error> {
    let messages: Vec<&MessageRow> = messages.iter().collect();
    MESSAGES.write_earliest(connection, &messages, |message| (message.id.clone(),)).await
}

fn message_from_sql(row: &AnyRow) -> Result<MessageRow, sqlx::Error> {
    Ok(MessageRow {
        id: row.try_get("id")?,
        virtual_number: row.try_get("virtual_number")?,
        sender: row.try_get("sender")?,
        message_type: row.try_get("message_type")?,
        text: row.try_get("text")?,
        keyword1: row.try_get("keyword1")?,
        keyword2: row.try_get("keyword2")?,
        profile: ProfileRow {
            id: row.try_get("profile_id")?,
            username: row.try_get("profile_username")?,
            first_name: row.try_get("profile_first_name")?,
            last_name: row.try_get("profile_last_name")?,
            email: row.try_get("profile_email")?,
            phone: row.try_get("profile_phone")?,
            picture: row.try_get("profile_picture")?,
            gender: row.try_get("profile_gender")?,
            title: row.try_get("profile_title")?,
        },
        message_id: row.try_get("message_id")?,
        message_at: row.try_get("message_at")?,
        payload_json: row.try_get("payload_json")?,
        received_at: row.try_get("received_at")?,
        stream_sequence: row.try_get("stream_sequence")?,
        raw_json: row.try_get("raw_json")?,
    })
}

pub async fn get_message(database: &Database, id: &str) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM vmn_messages WHERE id = $1", MESSAGES.column_list());
    let row = sqlx::query(&sql).bind(id.to_owned()).fetch_optional(database.pool()).await?;
    row.as_ref().map(message_from_sql).transpose()
}

/// Messages matching `conditions`, newest first (by receive time), at most `limit`.
pub async fn list_messages(
    database: &Database,
    conditions: Conditions,
    cursor: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    MESSAGES
        .page(database, conditions, Keyset::new(&["received_at", "id"], cursor, limit), message_from_sql)
        .await
}

/// One keyword-count cell: messages of one day to one virtual number with one first keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordCell {
    pub epoch_day: i64,
    pub virtual_number: String,
    pub keyword: String,
    pub count: i64,
}

/// Counts of first keywords per day (in the zone `offset_micros` east of UTC) and virtual number;
/// messages without a keyword are not counted. By day, then number, then count (highest first).
pub async fn keyword_counts(
    database: &Database,
    mut conditions: Conditions,
    offset_micros: i64,
) -> Result<Vec<KeywordCell>, sqlx::Error> {
    let offset = conditions.bind(offset_micros);
    conditions.push("keyword1 <> ''");
    let sql = format!(
        "SELECT {} AS epoch_day, virtual_number, keyword1, COUNT(*) AS messages FROM vmn_messages{} \
         GROUP BY epoch_day, virtual_number, keyword1 \
         ORDER BY epoch_day, virtual_number, messages DESC, keyword1",
        epoch_day_sql("received_at", &offset),
        conditions.where_clause()
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok(KeywordCell {
                epoch_day: row.try_get("epoch_day")?,
                virtual_number: row.try_get("virtual_number")?,
                keyword: row.try_get("keyword1")?,
                count: row.try_get("messages")?,
            })
        })
        .collect()
}
