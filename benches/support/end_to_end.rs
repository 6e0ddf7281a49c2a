//! The evaluate bench's end-to-end part (issue 13): `steprule plan` on the same million
//! patients as a CSV, a JSONL and a Shift_JIS CSV file, against DuckDB running the thirty steps
//! as SQL straight over the file (contestant (d), `benches/duckdb/`) and DuckDB's bare scan of
//! it, in one run, interleaved, each repeated and reported by its median. DuckDB reads the CSV
//! and the JSONL; the Shift_JIS copy is held against it on the CSV (DuckDB reads no Shift_JIS
//! without an extension from the network), so its decoding is steprule's alone.
//!
//! `plan` is timed from spawn to exit (`--days 7 --format json`, stdout to a file in the
//! bench's temporary folder) with its peak resident set from `wait4`. DuckDB runs in a Python
//! process of its own (a venv under the target directory, made with pip when missing); its
//! clock runs around each query alone, so the interpreter's start and `import duckdb` are not
//! in its figures. Each DuckDB query reads and parses the file anew.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::child;

/// How many times each contestant runs; the median is reported.
pub const REPEATS: usize = 5;

/// The three files `plan` reads, with the format and encoding flags each needs.
pub struct Exports {
    pub csv: PathBuf,
    pub jsonl: PathBuf,
    pub sjis: PathBuf,
}

/// Writes the CSV from `rows` into `dir`, and its JSONL and Shift_JIS copies (same rows, same
/// order; JSONL leaves empty cells out and writes its keys in the columns' order, as exports of
/// that kind do).
pub fn write_exports(dir: &Path, rows: impl std::io::Read) -> Result<Exports, String> {
    let exports = Exports {
        csv: dir.join("patients.csv"),
        jsonl: dir.join("patients.jsonl"),
        sjis: dir.join("patients_sjis.csv"),
    };
    let create = |path: &Path| {
        File::create(path)
            .map(|file| BufWriter::with_capacity(1 << 20, file))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let (mut csv, mut jsonl, mut sjis) = (
        create(&exports.csv)?,
        create(&exports.jsonl)?,
        create(&exports.sjis)?,
    );
    let mut header: Vec<String> = Vec::new();
    let io = |e: std::io::Error| e.to_string();
    for line in BufReader::with_capacity(1 << 20, rows).lines() {
        let line = line.map_err(io)?;
        csv.write_all(line.as_bytes()).map_err(io)?;
        csv.write_all(b"\n").map_err(io)?;
        let (encoded, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&line);
        if unmappable {
            return Err("a generated row has a character Shift_JIS lacks".into());
        }
        sjis.write_all(&encoded).map_err(io)?;
        sjis.write_all(b"\n").map_err(io)?;
        // The generator quotes nothing: its cells hold no commas.
        let cells: Vec<&str> = line.split(',').collect();
        if header.is_empty() {
            header = cells.iter().map(|s| (*s).to_owned()).collect();
            continue;
        }
        // The keys in the columns' order, as an export writes them (a `serde_json::Map` would
        // sort them, and a sorted line is the one order `plan` read fastest before session 12).
        let mut object = Vec::with_capacity(line.len() * 2);
        for (key, cell) in header
            .iter()
            .zip(&cells)
            .filter(|(_, cell)| !cell.is_empty())
        {
            object.push(if object.is_empty() { b'{' } else { b',' });
            serde_json::to_writer(&mut object, key).map_err(|e| e.to_string())?;
            object.push(b':');
            serde_json::to_writer(&mut object, cell).map_err(|e| e.to_string())?;
        }
        if object.is_empty() {
            object.push(b'{');
        }
        object.extend_from_slice(b"}\n");
        jsonl.write_all(&object).map_err(io)?;
    }
    for mut file in [csv, jsonl, sjis] {
        file.flush().map_err(io)?;
    }
    Ok(exports)
}

/// One `plan` run.
pub struct PlanRun {
    pub wall: f64,
    pub peak: Option<u64>,
    /// Sends per step id, from the JSON it printed.
    pub per_step: BTreeMap<String, u64>,
    /// The JSON it printed, to compare across the three files.
    pub output: PathBuf,
}

/// Runs `plan` on `patients` (its JSON into `output`), timed from spawn to exit.
pub fn plan(
    binary: &Path,
    root: &Path,
    patients: &Path,
    (now, days): (&str, i64),
    output: &Path,
) -> Result<PlanRun, String> {
    let out = File::create(output).map_err(|e| format!("{}: {e}", output.display()))?;
    super::child::settle_disk();
    super::child::warm(patients)?;
    let started = Instant::now();
    let spawned = Command::new(binary)
        .arg("plan")
        .arg(root.join("benches/fixtures/thirty_steps.step"))
        .arg("--templates")
        .arg(root.join("rules/templates"))
        .arg("--patients")
        .arg(patients)
        .args([
            "--now",
            now,
            "--days",
            &days.to_string(),
            "--format",
            "json",
        ])
        .current_dir(output.parent().unwrap_or(root))
        .env("NO_COLOR", "1")
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let (code, peak) = child::wait(spawned)?;
    let wall = started.elapsed().as_secs_f64();
    if code != Some(0) {
        return Err(format!(
            "plan on {} exited with {code:?}",
            patients.display()
        ));
    }
    let mut per_step = BTreeMap::new();
    let file = File::open(output).map_err(|e| e.to_string())?;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let row: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        let step = row["step"].as_str().unwrap_or("?").to_owned();
        *per_step.entry(step).or_default() += 1;
    }
    Ok(PlanRun {
        wall,
        peak,
        per_step,
        output: output.to_owned(),
    })
}

/// One run of the DuckDB script: its bare scan, its thirty-step query and the query's sends
/// per step (index in the rules file).
pub struct DuckRun {
    pub version: String,
    pub threads: u64,
    pub scan: f64,
    pub query: f64,
    pub per_step: BTreeMap<usize, u64>,
}

/// A Python with `duckdb`: the venv under the target directory, made when missing.
pub fn duckdb_python(target: &Path) -> Result<PathBuf, String> {
    let venv = target.join("duckdb-venv");
    let python = venv.join("bin/python");
    let has_duckdb = |python: &Path| {
        Command::new(python)
            .args(["-c", "import duckdb"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if has_duckdb(&python) {
        return Ok(python);
    }
    println!(
        "(d) installing the Python duckdb package into {}",
        venv.display()
    );
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    let installed = made.success()
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "duckdb"])
            .status()
            .map_err(|e| format!("pip install duckdb: {e}"))?
            .success();
    if installed && has_duckdb(&python) {
        Ok(python)
    } else {
        Err("could not install the Python duckdb package (python3 -m venv, pip)".into())
    }
}

/// What DuckDB reads: the CSV (`read_csv`) or its JSONL copy (`read_json`).
#[derive(Clone, Copy)]
pub enum DuckSource {
    Csv,
    Jsonl,
}

/// Runs `benches/duckdb/thirty_steps.py` once on `file`, read as `source` says.
pub fn duckdb(
    python: &Path,
    root: &Path,
    (file, source): (&Path, DuckSource),
    window: [&str; 3],
) -> Result<DuckRun, String> {
    super::child::settle_disk();
    super::child::warm(file)?;
    let output = Command::new(python)
        .arg(root.join("benches/duckdb/thirty_steps.py"))
        .arg(file)
        .args(window)
        .arg("1")
        .arg(match source {
            DuckSource::Csv => "csv",
            DuckSource::Jsonl => "jsonl",
        })
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !output.status.success() {
        return Err("the DuckDB script failed".into());
    }
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("DuckDB's answer: {e}"))?;
    let first = |key: &str| json[key][0].as_f64().unwrap_or(f64::NAN);
    let per_step = json["per_step"]
        .as_object()
        .map(|steps| {
            steps
                .iter()
                .filter_map(|(step, n)| Some((step.parse().ok()?, n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok(DuckRun {
        version: json["version"].as_str().unwrap_or("?").to_owned(),
        threads: json["threads"].as_u64().unwrap_or(0),
        scan: first("scan"),
        query: first("query"),
        per_step,
    })
}

/// Whether two files hold the same bytes (read a block at a time).
pub fn same_bytes(a: &Path, b: &Path) -> Result<bool, String> {
    let open = |path: &Path| {
        File::open(path)
            .map(|file| BufReader::with_capacity(1 << 20, file))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let (mut a, mut b) = (open(a)?, open(b)?);
    loop {
        let (left, right) = (
            a.fill_buf().map_err(|e| e.to_string())?,
            b.fill_buf().map_err(|e| e.to_string())?,
        );
        let n = left.len().min(right.len());
        if n == 0 {
            return Ok(left.is_empty() && right.is_empty());
        }
        if left[..n] != right[..n] {
            return Ok(false);
        }
        a.consume(n);
        b.consume(n);
    }
}
