//! The contacts tables: writing a batch of versions, and the queries behind the API.
//!
//! * `contacts`: one row per contact, its current version (precedence in `model.rs`);
//! * `contact_versions`: every distinct version, unique by (id, body digest);
//! * `contact_attributes`: the current version's attributes, one row each, rewritten whenever the
//!   current version changes, so attribute filters are plain `key = value` SQL on both backends.

use std::collections::BTreeMap;

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{
    Backend, Conditions, Database, Keyset, MigrationFiles, Table, columns, delete_where_in, like_prefix,
    select_page, values_rows, write_rows,
};

use crate::model::{Precedence, WINNER, identity_key, name_key};

pub const MIGRATIONS: &[MigrationFiles] = &[
    MigrationFiles {
        version: 1,
        description: "contacts, their versions and attributes",
        sqlite: include_str!("../migrations/sqlite/0001_contacts.sql"),
        postgres: include_str!("../migrations/postgres/0001_contacts.sql"),
    },
    MigrationFiles {
        version: 2,
        description: "fewer contact indexes",
        sqlite: include_str!("../migrations/sqlite/0002_fewer_indexes.sql"),
        postgres: include_str!("../migrations/postgres/0002_fewer_indexes.sql"),
    },
    switchboard_store::BYTEWISE_TEXT,
];

/// The tables the service writes (`contact_attributes` is written by [`replace_attributes`]).
pub const TABLES: &[&dyn switchboard_store::TableShape] = &[&CONTACTS, &VERSIONS];

/// What the retention job may expire: old versions, and the raw JSON of old versions and of contacts
/// whose last event is old. The current version of every contact is kept.
pub const RETENTION: &[switchboard_service::retention::Target] = {
    use switchboard_service::retention::Target;
    &[
        Target::delete_history(&VERSIONS),
        Target::clear_raw_json(&VERSIONS, "received_at"),
        Target::clear_raw_json(&CONTACTS, "last_received_at"),
    ]
};

/// One version as stored: the contact row it proposes, and its history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    pub id: String,
    pub identity: Option<String>,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
    pub company: Option<String>,
    /// Attribute values as text (non-string JSON values as JSON).
    pub attributes: BTreeMap<String, String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// `updated_at`, or `i64::MIN` when the version has none: the precedence key.
    pub updated_key: i64,
    pub digest: String,
    pub status: Option<String>,
    /// `updated_at`, else the receive time: the list order and what "updated since" compares.
    pub listed_at: i64,
    pub received_at: i64,
    pub first_received_at: i64,
    pub last_received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

switchboard_store::current_row!(ContactRow);

impl ContactRow {
    pub fn precedence(&self) -> Precedence {
        Precedence {
            keys: [self.updated_key],
            digest: self.digest.clone(),
            stream_sequence: self.stream_sequence,
        }
    }
}

/// A table of contact versions: every column of a version, then `$extra`. The search keys are
/// derived from the values as they are bound, so they can never disagree with them.
macro_rules! contact_table {
    ($name:literal, $key:expr $(, $extra:ident)*) => {
        Table {
            name: $name,
            key: $key,
            columns: columns!(ContactRow {
                id,
                identity,
                identity_key: |query, row| query.bind(search_key(&row.identity, identity_key)),
                first_name,
                middle_name,
                last_name,
                first_name_key: |query, row| query.bind(search_key(&row.first_name, name_key)),
                middle_name_key: |query, row| query.bind(search_key(&row.middle_name, name_key)),
                last_name_key: |query, row| query.bind(search_key(&row.last_name, name_key)),
                gender,
                birth_date,
                company,
                attributes_json: |query, row| query.bind(attributes_json(row)),
                created_at,
                updated_at,
                updated_key,
                digest,
                status,
                listed_at,
                received_at,
                stream_sequence,
                raw_json,
                $($extra,)*
            }),
        }
    };
}

/// The current version of every contact (the service's precedence rule), with the first and last
/// receive time of all its versions.
const CONTACTS: Table<ContactRow> = contact_table!("contacts", &["id"], first_received_at, last_received_at);

/// Every distinct version of a contact, at its earliest delivery.
const VERSIONS: Table<ContactRow> = contact_table!("contact_versions", &["id", "digest"]);

/// Columns that exist only to be searched; derived from the others and never read back.
const SEARCH_COLUMNS: &[&str] = &["identity_key", "first_name_key", "middle_name_key", "last_name_key"];

/// The search key of an optional value (empty when there is none).
fn search_key(value: &Option<String>, derive: fn(&str) -> String) -> String {
    value.as_deref().map(derive).unwrap_or_default()
}

fn attributes_json(row: &ContactRow) -> String {
    // A map of strings always serialises.
    serde_json::to_string(&row.attributes).unwrap_or_default()
}

/// The columns every query reads: a contact as [`contact_from_sql`] expects it.
fn select_list() -> String {
    CONTACTS.names().filter(|column| !SEARCH_COLUMNS.contains(column)).collect::<Vec<_>>().join(", ")
}

/// `contact_versions` read as contacts: a version's receive bounds are its own receive time.
fn version_select_list() -> String {
    CONTACTS
        .names()
        .filter(|column| !SEARCH_COLUMNS.contains(column))
        .map(|column| match column {
            "first_received_at" | "last_received_at" => format!("received_at AS {column}"),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a batch of versions inside the caller's transaction and returns the contacts that
/// changed. Versions first, then contacts, then the changed contacts' attributes, each sorted by key:
/// every writer takes row locks in the same order, so concurrent replicas cannot deadlock.
pub async fn write_versions(
    connection: &mut AnyConnection,
    versions: &[ContactRow],
) -> Result<Vec<ContactRow>, sqlx::Error> {
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    let versions: Vec<&ContactRow> = versions.iter().collect();
    // Every distinct version keeps its earliest delivery, and what derives from that delivery: the
    // receive time, and the list time of a version without `updated_at`.
    VERSIONS
        .write_history(
            connection,
            &versions,
            |version| (version.id.as_str(), version.digest.as_str()),
            &["listed_at"],
        )
        .await?;
    let changed = CONTACTS
        .write_current(
            connection,
            &versions,
            |version| version.id.as_str(),
            &WINNER.beats_sql(CONTACTS.name),
            contact_from_sql,
        )
        .await?;
    replace_attributes(connection, &changed).await?;
    Ok(changed)
}

/// Makes `contact_attributes` hold exactly the attributes of `contacts` (their stored current
/// versions). Runs after the contacts upsert in the same transaction, which holds those contacts'
/// row locks, so no other writer touches these attribute rows meanwhile.
async fn replace_attributes(
    connection: &mut AnyConnection,
    contacts: &[ContactRow],
) -> Result<(), sqlx::Error> {
    if contacts.is_empty() {
        return Ok(());
    }
    let backend = Backend::of(connection);
    let ids: Vec<&str> = contacts.iter().map(|contact| contact.id.as_str()).collect();
    delete_where_in(connection, "contact_attributes", "contact_id", &ids).await?;

    let attributes: Vec<(&str, &str, &str)> = contacts
        .iter()
        .flat_map(|contact| {
            contact.attributes.iter().map(|(key, value)| (contact.id.as_str(), key.as_str(), value.as_str()))
        })
        .collect();
    write_rows(
        connection,
        &attributes,
        |size| {
            format!(
                "INSERT INTO contact_attributes (contact_id, key, value) VALUES {}",
                values_rows(backend, size, 3)
            )
        },
        |query, (contact_id, key, value)| query.bind(*contact_id).bind(*key).bind(*value),
    )
    .await?;
    Ok(())
}

fn contact_from_sql(row: &AnyRow) -> Result<ContactRow, sqlx::Error> {
    let attributes_json: String = row.try_get("attributes_json")?;
    let attributes: BTreeMap<String, String> = serde_json::from_str(&attributes_json).map_err(|error| {
        sqlx::Error::ColumnDecode { index: "attributes_json".to_owned(), source: Box::new(error) }
    })?;
    Ok(ContactRow {
        id: row.try_get("id")?,
        identity: row.try_get("identity")?,
        first_name: row.try_get("first_name")?,
        middle_name: row.try_get("middle_name")?,
        last_name: row.try_get("last_name")?,
        gender: row.try_get("gender")?,
        birth_date: row.try_get("birth_date")?,
        company: row.try_get("company")?,
        attributes,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        updated_key: row.try_get("updated_key")?,
        digest: row.try_get("digest")?,
        status: row.try_get("status")?,
        listed_at: row.try_get("listed_at")?,
        received_at: row.try_get("received_at")?,
        first_received_at: row.try_get("first_received_at")?,
        last_received_at: row.try_get("last_received_at")?,
        stream_sequence: row.try_get("stream_sequence")?,
        raw_json: row.try_get("raw_json")?,
    })
}

/// How `GetContact` finds a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Id(String),
    /// Already in [`identity_key`] form. Several contacts may share an identity: the most recently
    /// updated one is returned.
    IdentityKey(String),
}

pub async fn get_contact(database: &Database, lookup: &Lookup) -> Result<Option<ContactRow>, sqlx::Error> {
    let (condition, value) = match lookup {
        Lookup::Id(id) => ("id = $1", id),
        Lookup::IdentityKey(key) => ("identity_key = $1", key),
    };
    let sql = format!(
        "SELECT {} FROM contacts WHERE {condition} ORDER BY listed_at DESC, id DESC LIMIT 1",
        select_list()
    );
    let row = sqlx::query(&sql).bind(value.clone()).fetch_optional(database.pool()).await?;
    row.as_ref().map(contact_from_sql).transpose()
}

/// What `ListContacts` filters on; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFilter {
    /// In [`name_key`] form: a prefix of the first, middle or last name.
    pub name_prefix: String,
    /// In [`identity_key`] form.
    pub identity_prefix: String,
    /// Every (key, value) must be an attribute of the contact.
    pub attributes: Vec<(String, String)>,
    /// Microseconds; contacts whose `listed_at` is not earlier.
    pub updated_since: Option<i64>,
}

/// Contacts matching `filter`, most recently updated first, at most `limit`.
pub async fn list_contacts(
    database: &Database,
    filter: &ContactFilter,
    cursor: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<ContactRow>, sqlx::Error> {
    let mut conditions = Conditions::new();
    if !filter.name_prefix.is_empty() {
        let pattern = like_prefix(&filter.name_prefix);
        let matches: Vec<String> = ["first_name_key", "middle_name_key", "last_name_key"]
            .iter()
            .map(|column| format!("{column} LIKE {} ESCAPE '\\'", conditions.bind(pattern.as_str())))
            .collect();
        conditions.push(format!("({})", matches.join(" OR ")));
    }
    if !filter.identity_prefix.is_empty() {
        let pattern = conditions.bind(like_prefix(&filter.identity_prefix));
        conditions.push(format!("identity_key LIKE {pattern} ESCAPE '\\'"));
    }
    for (key, value) in &filter.attributes {
        let (key, value) = (conditions.bind(key.as_str()), conditions.bind(value.as_str()));
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM contact_attributes a \
             WHERE a.contact_id = contacts.id AND a.key = {key} AND a.value = {value})"
        ));
    }
    conditions.range("listed_at", (filter.updated_since, None));
    select_page(
        database,
        &select_list(),
        "contacts",
        conditions,
        Keyset::new(&["listed_at", "id"], cursor, limit),
        contact_from_sql,
    )
    .await
}

/// The position of a version in the history order: updated time, first delivery, digest.
pub type VersionCursor = (i64, i64, String);

/// A contact's versions, oldest first (by `updated_at`; versions without one first), after
/// `cursor`, at most `limit`.
pub async fn list_versions(
    database: &Database,
    id: &str,
    cursor: Option<VersionCursor>,
    limit: i64,
) -> Result<Vec<ContactRow>, sqlx::Error> {
    let mut conditions = Conditions::new();
    let id = conditions.bind(id);
    conditions.push(format!("id = {id}"));
    if let Some((updated_key, stream_sequence, digest)) = cursor {
        let (updated_key, stream_sequence, digest) =
            (conditions.bind(updated_key), conditions.bind(stream_sequence), conditions.bind(digest));
        conditions.push(format!(
            "(updated_key, stream_sequence, digest) > ({updated_key}, {stream_sequence}, {digest})"
        ));
    }
    let limit = conditions.bind(limit);
    let sql = format!(
        "SELECT {} FROM contact_versions{} ORDER BY updated_key, stream_sequence, digest LIMIT {limit}",
        version_select_list(),
        conditions.where_clause()
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter().map(contact_from_sql).collect()
}
