//! The header mapping: a small TOML file that translates a reservation system's column headers
//! (and stage values) into steprule's names, because clinics cannot rename their exports.
//!
//! ```toml
//! [columns]
//! "患者ID" = "id"
//! "予約日時" = "appointment_at"
//!
//! [stages]
//! "初診" = "first_visit"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::RecordsError;
use crate::printable::printable;

/// How one clinic's export names things: its column headers → steprule's column names, and
/// its stage values → the rules' stages. A header not listed keeps its own name (and becomes
/// an `other` column if the rules do not know it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMapping {
    columns: BTreeMap<String, String>,
    stages: BTreeMap<String, String>,
    /// The file it came from, for messages about it.
    source: Option<String>,
}

/// The file as written; `deny_unknown_fields` catches a misspelt `[column]` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    columns: BTreeMap<String, String>,
    #[serde(default)]
    stages: BTreeMap<String, String>,
}

impl HeaderMapping {
    /// Reads a mapping file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, RecordsError> {
        let error = |message: String| RecordsError::Mapping {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| error(format!("cannot read the file: {err}")))?;
        let mut mapping = Self::parse(&text).map_err(error)?;
        mapping.source = Some(path.display().to_string());
        Ok(mapping)
    }

    /// Reads a mapping from TOML text. The error is one line, with the line number.
    pub fn parse(text: &str) -> Result<Self, String> {
        // Windows editors like to save UTF-8 with a BOM, which TOML does not allow.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let file: MappingFile = toml::from_str(text).map_err(|err| {
            // toml's messages can run over several lines; a CLI error should be one.
            // Escaped: toml quotes the file, and the file may hold anything.
            let message = err
                .message()
                .lines()
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(printable)
                .collect::<Vec<_>>()
                .join("; ");
            match err.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {message}")
                }
                None => message,
            }
        })?;
        Ok(HeaderMapping {
            columns: trimmed(file.columns, "columns")?,
            stages: trimmed(file.stages, "stages")?,
            source: None,
        })
    }

    /// The steprule name for an export header, if the mapping renames it.
    pub fn column(&self, header: &str) -> Option<&str> {
        self.columns.get(header).map(String::as_str)
    }

    /// The rules' stage for an export's stage value, if the mapping translates it.
    pub fn stage(&self, value: &str) -> Option<&str> {
        self.stages.get(value).map(String::as_str)
    }

    /// Every stage translation, export value → stage.
    pub fn stages(&self) -> impl Iterator<Item = (&str, &str)> {
        self.stages.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The file the mapping was loaded from (`None` when parsed from text).
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
}

/// Cells and headers are compared trimmed, so the mapping's keys and values are too.
fn trimmed(
    entries: BTreeMap<String, String>,
    section: &str,
) -> Result<BTreeMap<String, String>, String> {
    entries
        .into_iter()
        .map(|(from, to)| {
            let (from, to) = (from.trim().to_owned(), to.trim().to_owned());
            if from.is_empty() || to.is_empty() {
                Err(format!("[{section}] has an empty name"))
            } else {
                Ok((from, to))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_stages() {
        let mapping = HeaderMapping::parse(
            "# mapping.toml\n[columns]\n\"患者ID\" = \"id\"\n\"氏名\" = \" name \"\n\n[stages]\n\"初診\" = \"first_visit\"\n",
        )
        .unwrap();
        assert_eq!(mapping.column("患者ID"), Some("id"));
        assert_eq!(mapping.column("氏名"), Some("name"));
        assert_eq!(mapping.column("id"), None);
        assert_eq!(mapping.stage("初診"), Some("first_visit"));
        assert_eq!(mapping.source(), None);
    }

    #[test]
    fn bom_and_empty_sections_are_fine() {
        assert_eq!(
            HeaderMapping::parse("\u{feff}"),
            Ok(HeaderMapping::default())
        );
        assert!(HeaderMapping::parse("[columns]\n").is_ok());
    }

    #[test]
    fn errors_are_one_line_with_the_line_number() {
        let err = HeaderMapping::parse("[columns]\n\"患者ID\" = \n").unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = HeaderMapping::parse("[column]\n\"患者ID\" = \"id\"\n").unwrap_err();
        assert!(err.contains("column"), "{err}");
        assert!(HeaderMapping::parse("[columns]\n\"患者ID\" = 3\n").is_err());
        assert!(HeaderMapping::parse("[columns]\n\"患者ID\" = \"\"\n").is_err());
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mapping.toml");
        std::fs::write(&path, "[columns\n").unwrap();
        let err = HeaderMapping::load(&path).unwrap_err().to_string();
        assert!(err.contains("mapping.toml"), "{err}");
        assert!(err.contains("line 1"), "{err}");

        std::fs::write(&path, "[columns]\n\"患者ID\" = \"id\"\n").unwrap();
        let mapping = HeaderMapping::load(&path).unwrap();
        assert_eq!(mapping.column("患者ID"), Some("id"));
        assert_eq!(mapping.source(), Some(path.display().to_string().as_str()));

        let missing = HeaderMapping::load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"));
    }
}
