//! The `steprule` command: maps arguments to library calls and results to exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use steprule::check;
use steprule::diagnostic::{self, Diagnostic, Severity};

/// Stage-aware LINE step delivery for clinics.
#[derive(Parser)]
#[command(name = "steprule", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check .step files and their templates; report every problem found.
    Check {
        /// The .step files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors (exit code 1).
        #[arg(long)]
        deny_warnings: bool,
        /// Where the templates are (default: `templates/` beside each .step file).
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

/// Exit codes: 0 clean (or warnings only), 1 problems in the rules, 2 usage or I/O errors.
const EXIT_FINDINGS: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            files,
            format,
            deny_warnings,
            templates,
        } => run_check(&files, format, deny_warnings, templates.as_deref()),
    }
}

fn run_check(
    files: &[PathBuf],
    format: Format,
    deny_warnings: bool,
    templates: Option<&std::path::Path>,
) -> ExitCode {
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut summaries = Vec::new();
    let mut unreadable = false;
    for path in files {
        match check::check_path(path, templates) {
            Ok(outcome) => {
                summaries.push(summary(path, &outcome));
                all.extend(outcome.diagnostics);
            }
            Err(err) => {
                // The other files are still checked: one missing file should not hide their
                // problems.
                summaries.push(format!("{}: cannot read: {err}", path.display()));
                unreadable = true;
            }
        }
    }
    match format {
        Format::Json => println!("{}", diagnostic::render_json(&all)),
        Format::Human => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            eprint!("{}", diagnostic::render_human(&all, color));
            for line in &summaries {
                eprintln!("{line}");
            }
        }
    }
    if unreadable {
        if let Format::Json = format {
            eprintln!("{}", summaries.join("\n"));
        }
        return ExitCode::from(EXIT_USAGE);
    }
    let errors = all.iter().any(|d| d.severity == Severity::Error);
    let warnings = all.iter().any(|d| d.severity == Severity::Warning);
    if errors || (deny_warnings && warnings) {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    }
}

fn summary(path: &std::path::Path, outcome: &check::CheckOutcome) -> String {
    let count = |severity| {
        outcome
            .diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    };
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match &outcome.rules {
        Some(rules) if warnings == 0 => format!(
            "{}: ok, {} and {} checked",
            path.display(),
            plural(rules.steps.len(), "step"),
            plural(distinct_templates(rules), "template"),
        ),
        _ => format!(
            "{}: {}, {}",
            path.display(),
            plural(errors, "error"),
            plural(warnings, "warning")
        ),
    }
}

fn distinct_templates(rules: &check::RuleSet) -> usize {
    let mut names: Vec<&str> = rules
        .steps
        .iter()
        .flat_map(|s| s.templates.iter().map(|t| t.name.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names.len()
}
