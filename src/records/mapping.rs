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
//! "キャンセル待ち" = "-"          # this status: no stage
//!
//! [empty]                          # cells that mean "nothing here", by column
//! "予約日時" = ["-", "未定"]
//!
//! [opted_out]                      # the export's words for the opt-out column
//! yes = ["配信停止", "希望しない"]
//! no = ["希望する"]
//!
//! [tags]
//! separators = ["、", ";"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::RecordsError;
use crate::printable::printable;

/// How one clinic's export names things: its column headers → steprule's column names, its
/// stage values → the rules' stages (or `-`, no stage), the values that mean "empty" in a
/// column, its opt-out words and its tag separators. A header not listed keeps its own name
/// (and becomes an `other` column if the rules do not know it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMapping {
    columns: BTreeMap<String, String>,
    stages: BTreeMap<String, String>,
    /// Column (header or steprule name) → the cell values that mean "empty" in it.
    empty: BTreeMap<String, Arc<[String]>>,
    /// The clinic's own words for "opted out" and "not opted out", before the built-in ones.
    opted_out: OptOutWords,
    /// What separates tags in a cell, when the clinic says (else [`DEFAULT_TAG_SEPARATORS`]).
    tag_separators: Option<Vec<String>>,
    /// The file it came from, for messages about it.
    source: Option<String>,
}

/// The words an export writes in its opt-out column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOutWords {
    /// Mean "opted out: send nothing".
    pub yes: Vec<String>,
    /// Mean "not opted out".
    pub no: Vec<String>,
}

/// What separates tags in a cell unless the mapping says otherwise: steprule's `;` and the
/// separators Japanese exports write (`、`, `,` and their full-width forms).
pub const DEFAULT_TAG_SEPARATORS: &[&str] = &[";", "、", ",", "，", "；"];

/// Bounds on the lists a mapping gives, so that no mapping makes a cell slow to read: each
/// cell is compared with at most this many words, or split on at most this many separators.
const MAX_WORDS: usize = 64;
const MAX_WORD_BYTES: usize = 64;

/// The file as written; `deny_unknown_fields` catches a misspelt `[column]` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    columns: BTreeMap<String, String>,
    #[serde(default)]
    stages: BTreeMap<String, String>,
    #[serde(default)]
    empty: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    opted_out: OptOutFile,
    #[serde(default)]
    tags: TagsFile,
}

/// `"-"` or `["-", "未定"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OptOutFile {
    #[serde(default)]
    yes: Vec<String>,
    #[serde(default)]
    no: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TagsFile {
    separators: Option<Vec<String>>,
}

/// The stage value that means "no stage" in `[stages]`: a status the rules ignore.
pub const NO_STAGE: &str = "-";

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
        let empty = file
            .empty
            .into_iter()
            .map(|(column, values)| {
                let column = column.trim().to_owned();
                let values = words(values.into_vec(), "[empty]")?;
                if column.is_empty() {
                    return Err("[empty] has an empty column name".to_owned());
                }
                Ok((column, Arc::from(values)))
            })
            .collect::<Result<_, String>>()?;
        let opted_out = OptOutWords {
            yes: words(file.opted_out.yes, "[opted_out] yes")?,
            no: words(file.opted_out.no, "[opted_out] no")?,
        };
        if let Some(both) = opted_out
            .yes
            .iter()
            .find(|word| opted_out.no.contains(word))
        {
            return Err(format!(
                "[opted_out] lists `{}` under both yes and no",
                printable(both)
            ));
        }
        let tag_separators = match file.tags.separators {
            Some(separators) if separators.iter().all(|s| s.trim().is_empty()) => {
                return Err("[tags] separators is empty: give at least one, e.g. \";\"".into())
            }
            // Not trimmed: a space can be what separates tags.
            Some(separators) => Some(bounded(separators, "[tags] separators")?),
            None => None,
        };
        Ok(HeaderMapping {
            columns: trimmed(file.columns, "columns")?,
            stages: trimmed(file.stages, "stages")?,
            empty,
            opted_out,
            tag_separators,
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

    /// The values that mean "empty" in a column, listed under its header (as the export spells
    /// it) or its steprule name.
    pub fn empty_values(&self, header: &str, name: &str) -> Option<Arc<[String]>> {
        self.empty
            .get(header)
            .or_else(|| self.empty.get(name))
            .cloned()
    }

    /// The clinic's words for the opt-out column.
    pub fn opted_out(&self) -> &OptOutWords {
        &self.opted_out
    }

    /// The tag separators the mapping gives, if it gives any.
    pub fn tag_separators(&self) -> Option<&[String]> {
        self.tag_separators.as_deref()
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

/// A list of words compared with trimmed cells: trimmed, none empty, and bounded.
fn words(list: Vec<String>, section: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = list.into_iter().map(|w| w.trim().to_owned()).collect();
    if list.iter().any(String::is_empty) {
        return Err(format!("{section} has an empty word"));
    }
    bounded(list, section)
}

fn bounded(list: Vec<String>, section: &str) -> Result<Vec<String>, String> {
    if list.len() > MAX_WORDS || list.iter().any(|w| w.len() > MAX_WORD_BYTES) {
        return Err(format!(
            "{section} is too long: at most {MAX_WORDS} entries of {MAX_WORD_BYTES} bytes each"
        ));
    }
    Ok(list)
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
    fn empty_values_opt_out_words_and_tag_separators() {
        let mapping = HeaderMapping::parse(
            "[empty]\n\"キャンセル待ち\" = \"-\"\nappointment_at = [\"-\", \" 未定 \"]\n\
             [opted_out]\nyes = [\"配信停止\"]\nno = [\"希望する\"]\n\
             [tags]\nseparators = [\"、\", \" \"]\n",
        )
        .unwrap();
        assert_eq!(
            mapping.empty_values("キャンセル待ち", "x").as_deref(),
            Some(&["-".to_owned()][..])
        );
        let by_name = mapping.empty_values("予約日時", "appointment_at").unwrap();
        assert_eq!(&*by_name, ["-", "未定"]);
        assert_eq!(mapping.empty_values("memo", "memo"), None);
        assert_eq!(mapping.opted_out().yes, ["配信停止"]);
        assert_eq!(mapping.opted_out().no, ["希望する"]);
        assert_eq!(
            mapping.tag_separators(),
            Some(&["、".to_owned(), " ".to_owned()][..])
        );
        assert_eq!(HeaderMapping::default().tag_separators(), None);
    }

    #[test]
    fn lists_that_cannot_work_are_refused() {
        for (toml, expected) in [
            (
                "[opted_out]\nyes = [\"停止\"]\nno = [\" 停止\"]\n",
                "both yes and no",
            ),
            ("[opted_out]\nyes = [\"\"]\n", "empty word"),
            ("[opted_out]\nmaybe = [\"x\"]\n", "maybe"),
            ("[tags]\nseparators = []\n", "at least one"),
            ("[empty]\nmemo = [\" \"]\n", "empty word"),
            ("[empty]\nmemo = 3\n", "line 2"),
        ] {
            let err = HeaderMapping::parse(toml).unwrap_err();
            assert!(err.contains(expected), "{toml}: {err}");
        }
        let many = (0..65).map(|i| format!("\"w{i}\"")).collect::<Vec<_>>();
        let toml = format!("[opted_out]\nyes = [{}]\n", many.join(", "));
        assert!(HeaderMapping::parse(&toml)
            .unwrap_err()
            .contains("too long"));
        let long = format!("[tags]\nseparators = [\"{}\"]\n", "、".repeat(30));
        assert!(HeaderMapping::parse(&long)
            .unwrap_err()
            .contains("too long"));
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
