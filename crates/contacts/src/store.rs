//! The contacts tables: writing a batch of versions, and the queries behind the API.
//!
//! * `contacts`: one row per contact, its current version (precedence in `model.rs`);
//! * `contact_versions`: every distinct version, unique by (id, body digest);
//! * `contact_attributes`: the current version's attributes, one row each, rewritten whenever the
//!   current version changes, so attribute filters are plain `key = value` SQL on both backends.

use std::collections::BTreeMap;

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{
    Backend, Conditions, Database, MigrationFiles, batch_winners, current_rows_returned,
    current_state_update, delete_where_in, like_prefix, one_row_per_key, received_bounds, rows_by_key,
    values_rows, write_rows,
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
];

/// What the retention job may expire: old versions, and the raw JSON of old versions and of contacts
/// whose last event is old. The current version of every contact is kept.
pub const RETENTION: &[switchboard_service::retention::Target] = {
    use switchboard_service::retention::{Action, Target};
    &[
        Target {
            table: "contact_versions",
            key: &["id", "digest"],
            time_column: "received_at",
            action: Action::DeleteHistory,
        },
        Target {
            table: "contact_versions",
            key: &["id", "digest"],
            time_column: "received_at",
            action: Action::ClearRawJson("raw_json"),
        },
        Target {
            table: "contacts",
            key: &["id"],
            time_column: "last_received_at",
            action: Action::ClearRawJson("raw_json"),
        },
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

const CONTACT_COLUMNS: &[&str] = &[
    "id",
    "identity",
    "identity_key",
    "first_name",
    "middle_name",
    "last_name",
    "first_name_key",
    "middle_name_key",
    "last_name_key",
    "gender",
    "birth_date",
    "company",
    "attributes_json",
    "created_at",
    "updated_at",
    "updated_key",
    "digest",
    "status",
    "listed_at",
    "received_at",
    "first_received_at",
    "last_received_at",
    "stream_sequence",
    "raw_json",
];

/// Columns taken whole from the winning version.
const WINNER_COLUMNS: &[&str] = &[
    "identity",
    "identity_key",
    "first_name",
    "middle_name",
    "last_name",
    "first_name_key",
    "middle_name_key",
    "last_name_key",
    "gender",
    "birth_date",
    "company",
    "attributes_json",
    "created_at",
    "updated_at",
    "updated_key",
    "digest",
    "status",
    "listed_at",
    "received_at",
    "stream_sequence",
    "raw_json",
];

const VERSION_COLUMNS: &[&str] = &[
    "id",
    "digest",
    "identity",
    "identity_key",
    "first_name",
    "middle_name",
    "last_name",
    "first_name_key",
    "middle_name_key",
    "last_name_key",
    "gender",
    "birth_date",
    "company",
    "attributes_json",
    "created_at",
    "updated_at",
    "updated_key",
    "status",
    "listed_at",
    "received_at",
    "stream_sequence",
    "raw_json",
];

/// Columns that exist only to be searched; derived from the others and never read back.
const SEARCH_COLUMNS: &[&str] = &["identity_key", "first_name_key", "middle_name_key", "last_name_key"];

/// The columns every query reads: a contact as [`contact_from_sql`] expects it.
fn select_list() -> String {
    CONTACT_COLUMNS
        .iter()
        .filter(|column| !SEARCH_COLUMNS.contains(column))
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// `contact_versions` read as contacts: a version's receive bounds are its own receive time.
fn version_select_list() -> String {
    CONTACT_COLUMNS
        .iter()
        .filter(|column| !SEARCH_COLUMNS.contains(column))
        .map(|column| match *column {
            "first_received_at" | "last_received_at" => format!("received_at AS {column}"),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds `column` of `row`; the search keys are derived here, so they can never disagree with the
/// values they are derived from.
fn bind_column<'q>(query: Query<'q>, row: &'q ContactRow, column: &str) -> Query<'q> {
    let optional_key =
        |value: &Option<String>, derive: fn(&str) -> String| value.as_deref().map(derive).unwrap_or_default();
    match column {
        "id" => query.bind(row.id.as_str()),
        "identity" => query.bind(row.identity.as_deref()),
        "identity_key" => query.bind(optional_key(&row.identity, identity_key)),
        "first_name" => query.bind(row.first_name.as_deref()),
        "middle_name" => query.bind(row.middle_name.as_deref()),
        "last_name" => query.bind(row.last_name.as_deref()),
        "first_name_key" => query.bind(optional_key(&row.first_name, name_key)),
        "middle_name_key" => query.bind(optional_key(&row.middle_name, name_key)),
        "last_name_key" => query.bind(optional_key(&row.last_name, name_key)),
        "gender" => query.bind(row.gender.as_deref()),
        "birth_date" => query.bind(row.birth_date.as_deref()),
        "company" => query.bind(row.company.as_deref()),
        // A map of strings always serialises.
        "attributes_json" => query.bind(serde_json::to_string(&row.attributes).unwrap_or_default()),
        "created_at" => query.bind(row.created_at),
        "updated_at" => query.bind(row.updated_at),
        "updated_key" => query.bind(row.updated_key),
        "digest" => query.bind(row.digest.as_str()),
        "status" => query.bind(row.status.as_deref()),
        "listed_at" => query.bind(row.listed_at),
        "received_at" => query.bind(row.received_at),
        "first_received_at" => query.bind(row.first_received_at),
        "last_received_at" => query.bind(row.last_received_at),
        "stream_sequence" => query.bind(row.stream_sequence),
        "raw_json" => query.bind(row.raw_json.as_str()),
        other => {
            debug_assert!(false, "no contact column {other}");
            query
        }
    }
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
    write_history(connection, versions).await?;
    let changed = write_contacts(connection, versions).await?;
    replace_attributes(connection, &changed).await?;
    Ok(changed)
}

/// Every distinct version, keeping its earliest delivery (and what derives from that delivery: the
/// receive time, and the list time of a version without `updated_at`).
async fn write_history(connection: &mut AnyConnection, versions: &[ContactRow]) -> Result<(), sqlx::Error> {
    let earliest = one_row_per_key(
        versions,
        |version| (version.id.as_str(), version.digest.as_str()),
        |candidate, kept| candidate.stream_sequence < kept.stream_sequence,
    );
    let backend = Backend::of(connection);
    let rows: Vec<&ContactRow> = earliest.into_values().collect();
    write_rows(
        connection,
        &rows,
        |size| {
            format!(
                "INSERT INTO contact_versions ({}) VALUES {} \
                 ON CONFLICT (id, digest) DO UPDATE SET received_at = excluded.received_at, \
                 listed_at = excluded.listed_at, stream_sequence = excluded.stream_sequence \
                 WHERE excluded.stream_sequence < contact_versions.stream_sequence",
                VERSION_COLUMNS.join(", "),
                values_rows(backend, size, VERSION_COLUMNS.len())
            )
        },
        |query, version| {
            VERSION_COLUMNS.iter().fold(query, |query, column| bind_column(query, version, column))
        },
    )
    .await?;
    Ok(())
}

async fn write_contacts(
    connection: &mut AnyConnection,
    versions: &[ContactRow],
) -> Result<Vec<ContactRow>, sqlx::Error> {
    // Reduce the batch to one row per contact: the winner, with the batch's first and last receive
    // times (PostgreSQL refuses to touch a row twice in one statement).
    let versions: Vec<&ContactRow> = versions.iter().collect();
    let winners: BTreeMap<String, ContactRow> = batch_winners(&versions, |version| version.id.as_str())
        .into_iter()
        .map(|(id, winner)| (id, winner.into_row()))
        .collect();

    let (assignments, changed) = current_state_update(
        "contacts",
        &WINNER.beats_sql("contacts"),
        WINNER_COLUMNS,
        &["first_received_at"],
        &["last_received_at"],
    );
    let backend = Backend::of(connection);
    let rows: Vec<&ContactRow> = winners.values().collect();
    let returned = write_rows(
        connection,
        &rows,
        |size| {
            format!(
                "INSERT INTO contacts ({}) VALUES {} \
                 ON CONFLICT (id) DO UPDATE SET {assignments} WHERE {changed} \
                 RETURNING id, stream_sequence, first_received_at, last_received_at",
                CONTACT_COLUMNS.join(", "),
                values_rows(backend, size, CONTACT_COLUMNS.len()),
            )
        },
        |query, row| CONTACT_COLUMNS.iter().fold(query, |query, column| bind_column(query, row, column)),
    )
    .await?;
    let (mut changed, kept_their_version) = current_rows_returned(
        winners,
        &returned,
        |row| row.try_get("id"),
        |winner| winner.stream_sequence,
        |winner, row| {
            (winner.first_received_at, winner.last_received_at) = received_bounds(row)?;
            Ok(())
        },
    )?;
    changed.extend(
        rows_by_key(connection, &select_list(), "contacts", "id", &kept_their_version, contact_from_sql)
            .await?,
    );
    changed.sort_by(|left, right| left.id.cmp(&right.id));
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
    if let Some((listed_at, id)) = cursor {
        let (listed_at, id) = (conditions.bind(listed_at), conditions.bind(id));
        conditions.push(format!("(listed_at, id) < ({listed_at}, {id})"));
    }
    let limit = conditions.bind(limit);
    let sql = format!(
        "SELECT {} FROM contacts{} ORDER BY listed_at DESC, id DESC LIMIT {limit}",
        select_list(),
        conditions.where_clause()
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter().map(contact_from_sql).collect()
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
