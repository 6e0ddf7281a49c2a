//! The reading side of a database source: a thread of its own connects, opens a read-only
//! transaction, learns the query's columns, and fetches the rows through a portal in batches,
//! handing them over as text in small chunks through a bounded channel. The thread owns the
//! connection, so the iterator that reads the chunks owns nothing borrowed; the channel's bound
//! keeps memory flat however many rows the query has, and a dropped iterator ends the thread.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{Kind as PgKind, Type};
use postgres::{Client, NoTls};

use super::source::{quote_identifier, Database};
use crate::postgres_url::describe_chain;

/// Rows asked of the server per Execute on the portal.
pub(super) const BATCH_ROWS: i32 = 10_000;
/// Rows (and text bytes) per chunk handed over, and chunks waiting in the channel: together
/// what the reader holds ahead of the evaluator (at most a few MiB, however large the rows).
const CHUNK_ROWS: usize = 512;
const CHUNK_BYTES: usize = 1024 * 1024;
const CHUNKS_AHEAD: usize = 4;

/// How a column's values reach the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// As text, in a form the CSV reader reads (dates in ISO form, booleans as true/false).
    Text,
    /// As JSON text (json, jsonb, and arrays through `array_to_json`): a list becomes a list.
    Json,
}

/// One column of the query's result.
#[derive(Debug, Clone)]
pub(super) struct ResultColumn {
    pub name: String,
    pub kind: Kind,
}

/// One row as fetched.
#[derive(Debug)]
pub(super) enum Fetched {
    /// Its cells as text; `None` is SQL NULL.
    Cells(Vec<Option<String>>),
    /// Its cells together were longer than the bound; they were not sent.
    TooLong,
}

/// What the thread hands over.
#[derive(Debug)]
pub(super) enum Message {
    Columns(Vec<ResultColumn>),
    Rows(Vec<Fetched>),
    /// Every row was sent.
    End,
    /// Why reading stopped (password scrubbed; never a value from the rows).
    Failed(String),
}

/// Starts reading in a thread of its own; the first message is the columns or the failure.
pub(super) fn start(database: &Database, sql: String, row_limit: usize) -> Receiver<Message> {
    let (sender, receiver) = sync_channel(CHUNKS_AHEAD);
    let database = database.clone();
    let spawned = std::thread::Builder::new()
        .name("steprule-patients-db".to_owned())
        .spawn(move || {
            let outcome = read(&database, &sql, row_limit, &sender);
            let last = match outcome {
                Ok(()) => Message::End,
                Err(Stop::Failed(message)) => Message::Failed(database.scrub(&message)),
                Err(Stop::Unwanted) => return,
            };
            let _ = sender.send(last);
        });
    if let Err(err) = spawned {
        // No thread, no reading: the receiver hears about it at once.
        let (sender, receiver) = sync_channel(1);
        let _ = sender.send(Message::Failed(format!("cannot start reading: {err}")));
        return receiver;
    }
    receiver
}

/// Why the thread stopped early.
enum Stop {
    Failed(String),
    /// The reader dropped the receiver: it needs no more rows.
    Unwanted,
}

impl From<postgres::Error> for Stop {
    fn from(err: postgres::Error) -> Self {
        Stop::Failed(server_error(&err))
    }
}

fn read(
    database: &Database,
    sql: &str,
    row_limit: usize,
    sender: &SyncSender<Message>,
) -> Result<(), Stop> {
    let mut client: Client = database.config.connect(NoTls)?;
    let mut transaction = client.transaction()?;
    // Read-only before anything of the clinic's runs: a mistyped query (or a data-modifying
    // WITH) cannot write to the reservation system, and no later statement can undo it.
    // ISO dates, whatever the server's or the role's DateStyle.
    transaction.batch_execute("SET TRANSACTION READ ONLY; SET LOCAL DateStyle TO 'ISO, YMD'")?;
    let described = transaction.prepare(sql)?;
    if !described.params().is_empty() {
        return Err(Stop::Failed(format!(
            "the query has {} parameter(s) ($1 …); steprule passes none, so write the values \
             into the query",
            described.params().len()
        )));
    }
    let mut columns = Vec::with_capacity(described.columns().len());
    let mut expressions = Vec::with_capacity(described.columns().len());
    for (index, column) in described.columns().iter().enumerate() {
        let (kind, expression) =
            as_text(column.type_(), &format!("q.c{index}")).ok_or_else(|| {
                Stop::Failed(format!(
                    "column `{}` is binary data ({}), which has no text to read; leave it out \
                     of the query, or convert it (e.g. encode(col, 'hex'))",
                    column.name(),
                    column.type_().name()
                ))
            })?;
        columns.push(ResultColumn {
            name: column.name().to_owned(),
            kind,
        });
        expressions.push(expression);
    }
    send(sender, Message::Columns(columns))?;
    let statement = transaction.prepare(&wrapped(sql, &expressions, row_limit))?;
    let portal = transaction.bind(&statement, &[])?;
    let mut chunk = Chunk::default();
    let fetched = fetch(
        &mut transaction,
        &portal,
        expressions.len(),
        row_limit,
        &mut chunk,
        sender,
    );
    // The rows read before a failure go first, so that it is reported at its own row.
    if !chunk.rows.is_empty() {
        send(sender, Message::Rows(chunk.rows))?;
    }
    fetched
}

/// Rows read but not yet handed over.
#[derive(Default)]
struct Chunk {
    rows: Vec<Fetched>,
    bytes: usize,
}

/// Fetches every row of `portal`, `BATCH_ROWS` per Execute, handing them over in chunks; the
/// last chunk is left in `chunk`.
fn fetch(
    transaction: &mut postgres::Transaction<'_>,
    portal: &postgres::Portal,
    cells: usize,
    row_limit: usize,
    chunk: &mut Chunk,
    sender: &SyncSender<Message>,
) -> Result<(), Stop> {
    loop {
        let mut rows = transaction.query_portal_raw(portal, BATCH_ROWS)?;
        let mut fetched = 0;
        while let Some(row) = rows.next()? {
            fetched += 1;
            let length: i64 = row.try_get(cells)?;
            if usize::try_from(length).map_or(true, |length| length > row_limit) {
                chunk.rows.push(Fetched::TooLong);
            } else {
                let values = (0..cells)
                    .map(|index| row.try_get::<_, Option<String>>(index))
                    .collect::<Result<Vec<_>, _>>()?;
                chunk.bytes += values.iter().flatten().map(String::len).sum::<usize>();
                chunk.rows.push(Fetched::Cells(values));
            }
            if chunk.rows.len() >= CHUNK_ROWS || chunk.bytes >= CHUNK_BYTES {
                send(sender, Message::Rows(std::mem::take(&mut chunk.rows)))?;
                chunk.bytes = 0;
            }
        }
        if fetched < BATCH_ROWS {
            return Ok(());
        }
    }
}

fn send(sender: &SyncSender<Message>, message: Message) -> Result<(), Stop> {
    sender.send(message).map_err(|_| Stop::Unwanted)
}

/// The SQL that turns column `column` of type `type_` into text the reader parses as it does a
/// CSV cell, and how to read that text; `None` for binary data. Timestamps with a time zone
/// become RFC 3339 in UTC (`2026-11-30T05:00:00Z`), so the session's time zone does not matter;
/// those without one stay wall-clock times in the clinic's zone, as in a CSV export.
fn as_text(type_: &Type, column: &str) -> Option<(Kind, String)> {
    let mut type_ = type_;
    // Domains read as what they are over (bounded: a domain cannot be its own base).
    for _ in 0..16 {
        match type_.kind() {
            PgKind::Domain(base) => type_ = base,
            _ => break,
        }
    }
    if matches!(type_.kind(), PgKind::Array(_)) {
        return Some((Kind::Json, format!("array_to_json({column})::text")));
    }
    Some(match *type_ {
        Type::BYTEA => return None,
        Type::JSON | Type::JSONB => (Kind::Json, format!("{column}::text")),
        Type::TIMESTAMPTZ => (
            Kind::Text,
            format!("replace(({column} AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z'"),
        ),
        _ => (Kind::Text, format!("{column}::text")),
    })
}

/// The clinic's query, read inside another that gives every column as text under a name of
/// steprule's own (so duplicate or odd column names cannot matter to the SQL) and that sends
/// no cells of a row longer than `row_limit` bytes: the server measures the row, so a 10 MB
/// cell never crosses the network. The last column is the row's length.
fn wrapped(sql: &str, expressions: &[String], row_limit: usize) -> String {
    let names: Vec<String> = (0..expressions.len())
        .map(|index| quote_identifier(&format!("c{index}")))
        .collect();
    let texts: Vec<String> = expressions
        .iter()
        .zip(&names)
        .map(|(expression, name)| format!("{expression} AS {name}"))
        .collect();
    let lengths: Vec<String> = names
        .iter()
        .map(|name| format!("coalesce(octet_length(s.{name}), 0)::bigint"))
        .collect();
    let guarded: Vec<String> = names
        .iter()
        .map(|name| format!("CASE WHEN t.n <= {row_limit} THEN t.{name} END"))
        .collect();
    // The inner OFFSET 0 keeps the conversions from being computed twice; the newline after
    // the clinic's query ends a trailing `-- comment`.
    format!(
        "SELECT {guarded}, t.n FROM (SELECT s.*, (0::bigint + {lengths}) AS n FROM \
         (SELECT {texts} FROM (\n{sql}\n) AS q({names}) OFFSET 0) AS s) AS t",
        guarded = guarded.join(", "),
        lengths = lengths.join(" + "),
        texts = texts.join(", "),
        names = names.join(", "),
    )
}

/// A failure as the clinic needs to see it. The server's own message is kept (it is what says
/// which column or table is wrong), except for data exceptions (SQLSTATE class 22), whose
/// messages quote the value that failed: a patient's. DETAIL lines are never kept, for the
/// same reason.
fn server_error(err: &postgres::Error) -> String {
    let Some(db) = err.as_db_error() else {
        return describe_chain(err);
    };
    let code = db.code().code();
    if code.starts_with("22") {
        return format!(
            "the query failed on a value in the data (SQLSTATE {code}, a data exception); the \
             server's message is not shown, as it may quote patient data"
        );
    }
    let mut message = format!("the database says: {} (SQLSTATE {code})", db.message());
    if let Some(hint) = db.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_become_text_in_the_forms_the_reader_parses() {
        let text = |type_: &Type| as_text(type_, "q.c0").unwrap();
        assert_eq!(text(&Type::INT4), (Kind::Text, "q.c0::text".to_owned()));
        assert_eq!(text(&Type::JSONB).0, Kind::Json);
        assert_eq!(
            text(&Type::TEXT_ARRAY),
            (Kind::Json, "array_to_json(q.c0)::text".to_owned())
        );
        assert!(text(&Type::TIMESTAMPTZ).1.contains("AT TIME ZONE 'UTC'"));
        assert!(as_text(&Type::BYTEA, "q.c0").is_none());
    }

    #[test]
    fn the_wrapper_names_columns_itself_and_measures_rows() {
        let sql = wrapped(
            "SELECT id, id FROM p -- note",
            &["q.c0::text".to_owned(), "q.c1::text".to_owned()],
            1024,
        );
        assert!(sql.contains("(\nSELECT id, id FROM p -- note\n) AS q(\"c0\", \"c1\")"));
        assert!(sql.contains("CASE WHEN t.n <= 1024 THEN t.\"c1\" END, t.n FROM"));
        assert!(sql.contains("coalesce(octet_length(s.\"c0\"), 0)::bigint + coalesce"));
    }
}
