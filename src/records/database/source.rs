//! Where a reservation system's patients are: a `postgres://` URL and the query (or table) that
//! lists them. The URL may hold a password; it is kept apart from everything that is shown, and
//! scrubbed from every message as a last guard.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::postgres_url::{describe_chain, display_name, password_in, scrub};
use crate::printable::printable;
use crate::records::RecordsError;

/// How long connecting (and the server's first answer) may take when the URL does not say
/// (`connect_timeout=` seconds): a server that never answers must not stall a cron job.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a URL's `connect_timeout` may ask for.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// What lists the patients: the clinic's own `SELECT`, or every row of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientQuery {
    /// `--patients-query`: one `SELECT` (or `TABLE`, `VALUES`, `WITH …`), run as it is written.
    Sql(String),
    /// `--patients-table`: `name` or `schema.name`, always quoted as identifiers.
    Table(String),
}

impl PatientQuery {
    /// The query's text: a table name is quoted (`"a""b"`), never spliced in; a trailing `;`
    /// is dropped, since the query is read inside another.
    pub(super) fn sql(&self) -> Result<String, String> {
        match self {
            PatientQuery::Sql(sql) => {
                let sql = sql
                    .trim()
                    .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
                if sql.is_empty() {
                    return Err("--patients-query is empty".to_owned());
                }
                if sql.contains('\0') {
                    return Err("--patients-query holds a NUL character".to_owned());
                }
                Ok(sql.to_owned())
            }
            PatientQuery::Table(name) => {
                let parts: Vec<&str> = name.splitn(2, '.').collect();
                if parts
                    .iter()
                    .any(|part| part.is_empty() || part.contains('\0'))
                {
                    return Err(
                        "--patients-table needs a table name (or schema.table) without NUL \
                         characters"
                            .to_owned(),
                    );
                }
                let quoted: Vec<String> = parts.iter().map(|part| quote_identifier(part)).collect();
                Ok(format!("SELECT * FROM {}", quoted.join(".")))
            }
        }
    }
}

/// `name` as a PostgreSQL identifier: in double quotes, with its double quotes doubled, so that
/// no name can end the identifier early.
pub(super) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL database holding the clinic's patients, and the query that lists them.
#[derive(Clone)]
pub struct Database {
    pub(super) config: postgres::Config,
    pub(super) query: PatientQuery,
    /// The URL without its password: what messages call the source.
    name: String,
    /// The password as written in the URL, to scrub from messages.
    secret: Option<String>,
    pub(super) answer_within: Duration,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Whether `--patients` names a database rather than a file.
    pub fn is_url(text: &str) -> bool {
        crate::postgres_url::is_url(text)
    }

    /// Reads a `postgres://user:password@host:port/db?connect_timeout=10` URL. Nothing is
    /// connected yet. Errors never repeat the password.
    pub fn parse(url: &str, query: PatientQuery) -> Result<Self, RecordsError> {
        let secret = password_in(url);
        let mut config = postgres::Config::from_str(url.trim()).map_err(|err| {
            let message = scrub(&describe_chain(&err), secret.as_deref());
            RecordsError::Database {
                database: "--patients".to_owned(),
                message: format!("not a usable postgres:// URL: {message}"),
            }
        })?;
        let timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
            .clamp(Duration::from_secs(1), MAX_CONNECT_TIMEOUT);
        config.connect_timeout(timeout);
        config.application_name("steprule");
        let name = display_name(&config);
        let database = Database {
            config,
            query,
            name,
            secret,
            answer_within: timeout,
        };
        database
            .query
            .sql()
            .map_err(|message| database.error(message))?;
        Ok(database)
    }

    /// `postgres://user@host:port/db`: the URL as messages show it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `message` with the password taken out and control characters escaped.
    pub(super) fn scrub(&self, message: &str) -> String {
        printable(&scrub(message, self.secret.as_deref())).into_owned()
    }

    /// A problem with the whole source, as a [`RecordsError`].
    pub(super) fn error(&self, message: String) -> RecordsError {
        RecordsError::Database {
            database: self.name.clone(),
            message: self.scrub(&message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_name_is_quoted_and_cannot_end_its_quotes() {
        let table = |name: &str| PatientQuery::Table(name.to_owned()).sql().unwrap();
        assert_eq!(table("patients"), "SELECT * FROM \"patients\"");
        assert_eq!(
            table("resv.patients"),
            "SELECT * FROM \"resv\".\"patients\""
        );
        assert_eq!(
            table("p\"; DROP TABLE patients; --"),
            "SELECT * FROM \"p\"\"; DROP TABLE patients; --\""
        );
        assert!(PatientQuery::Table(String::new()).sql().is_err());
        assert!(PatientQuery::Table("a\0b".to_owned()).sql().is_err());
    }

    #[test]
    fn a_query_loses_its_trailing_semicolons() {
        let sql = PatientQuery::Sql("SELECT 1 AS id ; \n".to_owned())
            .sql()
            .unwrap();
        assert_eq!(sql, "SELECT 1 AS id");
        assert!(PatientQuery::Sql(" ; ".to_owned()).sql().is_err());
    }

    #[test]
    fn the_name_and_every_message_leave_the_password_out() {
        let url = "postgres://clinic:s3cr%40t@db.example:6543/resv?connect_timeout=3";
        let database = Database::parse(url, PatientQuery::Table("p".to_owned())).unwrap();
        assert_eq!(database.name(), "postgres://clinic@db.example:6543/resv");
        assert_eq!(database.answer_within, Duration::from_secs(3));
        let message = database.scrub("auth failed for s3cr%40t and s3cr@t");
        assert_eq!(message, "auth failed for ******** and ********");
        assert!(!format!("{database:?}").contains("s3cr"));
        let err = Database::parse(
            "postgres://clinic:hunter22@db:notaport/resv",
            PatientQuery::Table("p".to_owned()),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter22"), "{err}");
    }

    #[test]
    fn the_connect_timeout_is_bounded() {
        let query = PatientQuery::Table("p".to_owned());
        let long = Database::parse("postgres://u@h/db?connect_timeout=100000", query.clone());
        assert_eq!(long.unwrap().answer_within, MAX_CONNECT_TIMEOUT);
        let default = Database::parse("postgres://u@h/db", query).unwrap();
        assert_eq!(default.answer_within, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn urls_are_told_from_paths() {
        assert!(Database::is_url("postgres://u@h/db"));
        assert!(Database::is_url("PostgreSQL://u@h/db"));
        assert!(!Database::is_url("patients.csv"));
        assert!(!Database::is_url("./postgres/patients.csv"));
    }
}
