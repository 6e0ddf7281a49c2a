//! How to read a clinic's export: its text encoding, its format and the header mapping that
//! names its columns.

use std::path::Path;
use std::str::FromStr;

use super::HeaderMapping;

/// The text encoding of an export. Japanese reservation systems and Excel often write
/// Shift_JIS (really Windows-31J); newer systems write UTF-8, sometimes with a BOM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 if the file starts with a BOM; otherwise whichever of UTF-8 and Shift_JIS the
    /// first row with non-ASCII text is in. Either way, rows in the other are rejected.
    #[default]
    Auto,
    Utf8,
    ShiftJis,
}

impl FromStr for Encoding {
    type Err = String;

    /// Accepts the names staff are likely to type: `auto`, `utf-8`, `shift_jis`, `sjis`, `cp932`.
    fn from_str(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "auto" => Ok(Encoding::Auto),
            "utf8" | "utf_8" => Ok(Encoding::Utf8),
            "shift_jis" | "shiftjis" | "sjis" | "cp932" | "windows_31j" => Ok(Encoding::ShiftJis),
            _ => Err(format!(
                "unknown encoding `{name}` (expected auto, utf-8 or shift_jis)"
            )),
        }
    }
}

/// The layout of an export: a CSV table with a header line, or JSON Lines (one object per
/// patient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    Csv,
    Jsonl,
}

impl RecordFormat {
    /// The format a file's extension names: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(RecordFormat::Csv),
            "jsonl" | "ndjson" => Some(RecordFormat::Jsonl),
            _ => None,
        }
    }
}

impl FromStr for RecordFormat {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(RecordFormat::Csv),
            "jsonl" | "ndjson" => Ok(RecordFormat::Jsonl),
            _ => Err(format!("unknown format `{name}` (expected csv or jsonl)")),
        }
    }
}

/// Everything about reading an export that is not in the rules: chosen by the clinic once per
/// reservation system.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub encoding: Encoding,
    /// `None`: decided by the file's extension.
    pub format: Option<RecordFormat>,
    /// How the export's own column headers (and stage values) map to steprule's names.
    pub mapping: Option<HeaderMapping>,
}
