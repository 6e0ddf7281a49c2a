//! Where a command's patients are, from what the command line and the environment say: an
//! export file, or a reservation system's database (a postgres:// URL with its query or table,
//! in `--patients` or `STEPRULE_PATIENTS_URL`). What is shown of a URL has no password.

use std::path::{Path, PathBuf};

use super::{AppError, PatientSource};
use crate::records::{Database, Encoding, HeaderMapping, PatientQuery, ReadOptions, RecordFormat};

/// The patients as asked for: `--patients` and its companions, and `STEPRULE_PATIENTS_URL`.
#[derive(Debug, Clone, Default)]
pub struct PatientsAsked {
    /// A file, or a postgres:// URL.
    pub patients: Option<PathBuf>,
    pub query: Option<String>,
    pub table: Option<String>,
    pub encoding: Encoding,
    pub format: Option<RecordFormat>,
    /// A header mapping file to load.
    pub mapping: Option<PathBuf>,
    /// `STEPRULE_PATIENTS_URL`, read by the caller, used when `patients` is not given.
    pub url_from_env: Option<String>,
}

impl PatientSource {
    /// Where the patients are: `patients` (a file, or a URL with its query or table), else the
    /// URL from the environment; a usage error when neither says, or they say too much.
    pub fn locate(asked: PatientsAsked) -> Result<Self, AppError> {
        let mapping = asked
            .mapping
            .as_deref()
            .map(HeaderMapping::load)
            .transpose()?;
        let (query, table) = (asked.query, asked.table);
        let (file, database) = match asked.patients {
            Some(patients) => match patients.to_str().filter(|text| Database::is_url(text)) {
                Some(url) => database_source(url, query, table)?,
                None if query.is_some() || table.is_some() => return Err(AppError::Usage(
                    "--patients-query and --patients-table need a postgres:// URL in --patients"
                        .to_owned(),
                )),
                None => (patients, None),
            },
            None => match asked.url_from_env {
                Some(url) if Database::is_url(&url) => database_source(&url, query, table)?,
                Some(url) if !url.trim().is_empty() => {
                    return Err(AppError::Usage(
                        "STEPRULE_PATIENTS_URL must be a postgres:// URL".to_owned(),
                    ))
                }
                _ => {
                    return Err(AppError::Usage(
                        "--patients is required: the patient export (.csv or .jsonl), or a \
                         postgres:// URL (or set STEPRULE_PATIENTS_URL)"
                            .to_owned(),
                    ))
                }
            },
        };
        Ok(PatientSource {
            file,
            database,
            options: ReadOptions {
                encoding: asked.encoding,
                format: asked.format,
                mapping,
            },
        })
    }

    /// For `run FOLDER`: each clinic reads its own export, so `--patients` has no place; the
    /// reading options (`--encoding`, `--mapping` …) apply to every clinic.
    pub fn for_folder(folder: &Path, asked: PatientsAsked) -> Result<Self, AppError> {
        if asked.patients.is_some() || asked.query.is_some() || asked.table.is_some() {
            return Err(AppError::Usage(format!(
                "{} is a folder of clinics, each reading the patients.csv in its own folder: \
                 leave out --patients",
                folder.display()
            )));
        }
        let mut source = PatientSource::locate(PatientsAsked {
            patients: Some(folder.to_path_buf()),
            ..asked
        })?;
        // Each clinic's export replaces it; the folder only stands in until then.
        source.database = None;
        Ok(source)
    }
}

/// A database source from its URL and exactly one of the query and the table.
fn database_source(
    url: &str,
    query: Option<String>,
    table: Option<String>,
) -> Result<(PathBuf, Option<Database>), AppError> {
    let query = match (query, table) {
        (Some(sql), None) => PatientQuery::Sql(sql),
        (None, Some(table)) => PatientQuery::Table(table),
        _ => {
            return Err(AppError::Usage(
                "a postgres:// URL in --patients needs --patients-query \"SELECT …\" or \
                 --patients-table NAME"
                    .to_owned(),
            ))
        }
    };
    let database = Database::parse(url, query)?;
    Ok((PathBuf::from(database.name()), Some(database)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const URL: &str = "postgres://clinic:s3cret@db.example/reservations";

    fn usage(asked: PatientsAsked) -> String {
        match PatientSource::locate(asked) {
            Err(AppError::Usage(message)) => message,
            other => panic!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn a_file_is_read_as_an_export() {
        let source = PatientSource::locate(PatientsAsked {
            patients: Some("rules/patients.csv".into()),
            url_from_env: Some(URL.into()),
            ..PatientsAsked::default()
        })
        .unwrap();
        assert_eq!(source.file, PathBuf::from("rules/patients.csv"));
        assert!(source.database.is_none());
    }

    #[test]
    fn a_url_needs_exactly_one_of_query_and_table_and_never_shows_its_password() {
        let source = PatientSource::locate(PatientsAsked {
            patients: Some(URL.into()),
            table: Some("patients".into()),
            ..PatientsAsked::default()
        })
        .unwrap();
        assert!(source.database.is_some());
        assert!(!source.file.to_string_lossy().contains("s3cret"));
        let neither = usage(PatientsAsked {
            patients: Some(URL.into()),
            ..PatientsAsked::default()
        });
        assert!(neither.contains("--patients-table"), "{neither}");
        assert!(!neither.contains("s3cret"));
    }

    #[test]
    fn the_environment_is_used_only_without_patients_and_only_as_a_url() {
        let source = PatientSource::locate(PatientsAsked {
            query: Some("SELECT * FROM patients".into()),
            url_from_env: Some(URL.into()),
            ..PatientsAsked::default()
        })
        .unwrap();
        assert!(source.database.is_some());
        let not_a_url = usage(PatientsAsked {
            url_from_env: Some("/tmp/patients.csv".into()),
            ..PatientsAsked::default()
        });
        assert!(
            not_a_url.contains("must be a postgres:// URL"),
            "{not_a_url}"
        );
        for blank in [None, Some("  ".to_owned())] {
            let missing = usage(PatientsAsked {
                url_from_env: blank,
                ..PatientsAsked::default()
            });
            assert!(missing.starts_with("--patients is required"), "{missing}");
        }
        let query_on_a_file = usage(PatientsAsked {
            patients: Some("patients.csv".into()),
            query: Some("SELECT 1".into()),
            ..PatientsAsked::default()
        });
        assert!(
            query_on_a_file.contains("need a postgres:// URL"),
            "{query_on_a_file}"
        );
    }

    #[test]
    fn a_folder_of_clinics_refuses_patients_and_reads_no_database() {
        let refused = PatientSource::for_folder(
            Path::new("clinics"),
            PatientsAsked {
                patients: Some("patients.csv".into()),
                ..PatientsAsked::default()
            },
        );
        assert!(matches!(refused, Err(AppError::Usage(m)) if m.contains("leave out --patients")));
        let source = PatientSource::for_folder(
            Path::new("clinics"),
            PatientsAsked {
                url_from_env: Some(URL.into()),
                ..PatientsAsked::default()
            },
        )
        .unwrap();
        assert_eq!(source.file, PathBuf::from("clinics"));
        assert!(source.database.is_none());
    }
}
