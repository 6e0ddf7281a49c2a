//! `steprule review`: the review sheet (see `crate::review`). The rules are checked as `check`
//! checks them and the findings printed as it prints them; the sheet is written even when
//! there are errors — it is what a person reviews them on — and the exit code then says so, as
//! `check`'s does. Rules that cannot be read give no sheet.
//!
//! The sheet holds rendered messages, so patient data: it is written `0600`, and what goes to
//! stderr names steps, templates, rows and fields, never a value.

mod digest;
mod findings;
mod samples;

use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

use super::{AppError, Io, Outcome, PatientSource, RulesSource, WindowArgs};
use crate::check::{self, RuleSet};
use crate::diagnostic::{self, Diagnostic, Severity};
use crate::eval::Window;
use crate::plan::TimingPlan;
use crate::records::{PatientRecord, RecordSchema};
use crate::review::outline::{self, StepOutline};
use crate::review::{self, Sheet, StageGroup, StepSheet, VariantSheet};
use crate::source::SourceFile;
use crate::syntax::{self, Statement, StepDecl};
use crate::template::{self, TemplateStore};
use samples::{Chosen, Samples};

#[derive(Debug, Clone)]
pub struct ReviewRequest {
    pub rules: RulesSource,
    pub patients: PatientSource,
    /// Render every step for this patient id (default: a sample per step).
    pub patient: Option<String>,
    /// The review's instant: the date on the sheet and the `now` templates see (default:
    /// `SOURCE_DATE_EPOCH`, else the clock), so that a sheet can be made again byte for byte.
    pub now: Option<String>,
    /// Write the sheet here (created `0600`) instead of stdout.
    pub out: Option<PathBuf>,
}

/// How far ahead the evaluation that picks samples looks, as `explain` does.
const HORIZON_DAYS: i64 = super::explain::HORIZON_DAYS;

pub fn run(request: &ReviewRequest, io: &mut Io<'_>) -> Result<Outcome, AppError> {
    let path = &request.rules.file;
    let file = SourceFile::read(path).map_err(|source| AppError::ReadRules {
        path: path.clone(),
        source,
    })?;
    let mut store = match &request.rules.templates {
        Some(dir) => TemplateStore::new(dir),
        None => TemplateStore::beside(path),
    };
    let checked = check::check_file_with(&file, &mut store, check::CheckOptions::default());
    if !checked.diagnostics.is_empty() {
        write!(
            io.err,
            "{}",
            diagnostic::render_human(&checked.diagnostics, io.color)
        )?;
    }
    let (ast, _) = syntax::parse(&file);
    let declared = Declared::of(&ast.statements, checked.rules.as_ref());
    let decls: Vec<&StepDecl> = ast
        .statements
        .iter()
        .filter_map(|s| match s {
            Statement::Step(step) => Some(step.as_ref()),
            _ => None,
        })
        .collect();
    let mut steps = outline::outline(&file, &declared.stages, &decls);
    let now = review_instant(request.now.as_deref(), declared.timezone)?;
    let schema = match &checked.rules {
        Some(rules) => rules.record_schema(),
        None => declared.schema(),
    };
    let plan = checked.rules.as_ref().map(TimingPlan::compile);
    let samples = match &request.patient {
        Some(id) => samples::given(&request.patients, &schema, steps.len(), id, io.err)?,
        None => {
            let window = Window {
                now,
                from: now,
                to: now + chrono::Duration::days(HORIZON_DAYS),
            };
            let plan = plan.as_ref().map(|plan| (plan, window));
            samples::first_fitting(&request.patients, &schema, &steps, plan, io.err)?
        }
    };
    outline::in_stage_order(&mut steps);
    let digest = digest::of(&file, &store).map_err(|e| {
        AppError::Usage(format!(
            "cannot read the rules or a template to identify them: {e}"
        ))
    })?;
    let errors = count(&checked.diagnostics, Severity::Error);
    let warnings = count(&checked.diagnostics, Severity::Warning);
    let context = SheetContext {
        file: &file,
        rules: checked.rules.as_ref(),
        declared: &declared,
        schema: &schema,
        now,
        samples: &samples,
        env: template::environment(declared.timezone),
    };
    let mut sorted = findings::Sorted::new(&checked.diagnostics, &file, &store);
    let stages = context.groups(&steps, &mut store, &mut sorted);
    let sheet = Sheet {
        initial: declared.clinic.chars().next().unwrap_or('L').to_string(),
        clinic: declared.clinic.clone(),
        rules_file: path.display().to_string(),
        digest,
        date: japanese_date(now, declared.timezone),
        errors,
        warnings,
        patients_file: request.patients.file.display().to_string(),
        sample_note: sample_note(request.patient.is_some()),
        notes: notes(errors, request.patient.is_some(), &samples),
        stages,
        file_findings: sorted.rest(),
    };
    let html = review::render(&sheet).map_err(std::io::Error::other)?;
    // The sheet holds rendered messages: patient data.
    super::write_private(request.out.as_deref(), "the review sheet", &html, io)?;
    if errors > 0 {
        writeln!(
            io.err,
            "error: the rules have {errors} error(s): the sheet shows them, and nothing can be \
             sent until they are fixed"
        )?;
    }
    Ok(if errors > 0 {
        Outcome::Findings
    } else if samples.rows.incomplete() {
        Outcome::RowsSkipped
    } else {
        Outcome::Ok
    })
}

/// `2026年11月25日`, the day of `now` in the clinic's zone.
fn japanese_date(now: DateTime<Utc>, tz: Tz) -> String {
    let local = now.with_timezone(&tz);
    format!("{}年{}月{}日", local.year(), local.month(), local.day())
}

fn count(diagnostics: &[Diagnostic], severity: Severity) -> usize {
    diagnostics
        .iter()
        .filter(|d| d.severity == severity)
        .count()
}

/// `--now`, else `SOURCE_DATE_EPOCH` (seconds since 1970, as reproducible builds set it),
/// else the clock.
fn review_instant(now: Option<&str>, tz: Tz) -> Result<DateTime<Utc>, AppError> {
    if now.is_none() {
        if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
            let seconds: i64 = epoch.trim().parse().map_err(|_| {
                AppError::Usage("SOURCE_DATE_EPOCH is not a number of seconds".into())
            })?;
            return DateTime::from_timestamp(seconds, 0).ok_or_else(|| {
                AppError::Usage("SOURCE_DATE_EPOCH is outside the calendar".into())
            });
        }
    }
    let times = WindowArgs {
        now: now.map(str::to_owned),
        ..WindowArgs::default()
    };
    Ok(times.resolve(tz)?.now)
}

/// The settings the sheet needs, from the checked rules when there are any, else from the
/// file as written (so that a file with errors still gets its sheet).
struct Declared {
    clinic: String,
    timezone: Tz,
    stages: Vec<String>,
    dates: Vec<String>,
    fields: Vec<String>,
}

impl Declared {
    fn of(statements: &[Statement], rules: Option<&RuleSet>) -> Declared {
        let names = |idents: &[crate::syntax::Ident]| -> Vec<String> {
            idents.iter().map(|i| i.node.clone()).collect()
        };
        let mut declared = Declared {
            clinic: "LINE".to_owned(),
            timezone: chrono_tz::Asia::Tokyo,
            stages: Vec::new(),
            dates: Vec::new(),
            fields: Vec::new(),
        };
        for statement in statements {
            match statement {
                Statement::Clinic(name) => declared.clinic = name.node.clone(),
                Statement::Timezone(zone) => {
                    if let Ok(zone) = Tz::from_str(&zone.node) {
                        declared.timezone = zone;
                    }
                }
                Statement::Stages(s) => declared.stages.extend(names(s)),
                Statement::Dates(d) => declared.dates.extend(names(d)),
                Statement::Fields(f) => declared.fields.extend(names(f)),
                _ => {}
            }
        }
        if let Some(rules) = rules {
            declared.clinic = rules.clinic.clone().unwrap_or(declared.clinic);
            declared.timezone = rules.timezone;
            declared.stages = rules.stages.clone();
        }
        declared
    }

    fn schema(&self) -> RecordSchema {
        RecordSchema {
            timezone: self.timezone,
            stages: self.stages.clone(),
            date_fields: self.dates.clone(),
            fields: self.fields.clone(),
        }
    }
}

fn sample_note(given: bool) -> String {
    if given {
        "すべてのステップを、指定された患者で表示しています。".to_owned()
    } else {
        "ステップごとに、患者ファイルの上から順に、そのステップのステージと条件に合う最初の患者で表示しています（合う患者がいなければ、同じステージの最初の患者、それもいなければファイルの最初の患者）。患者は行番号と ID で示し、氏名は載せません。".to_owned()
    }
}

fn notes(errors: usize, given: bool, samples: &Samples) -> Vec<String> {
    let mut notes = Vec::new();
    if errors > 0 {
        let how = if given {
            ""
        } else {
            "各ステップの条件は評価できないため、見本の患者はステージだけで選んでいます。"
        };
        notes.push(format!(
            "ルールにエラーが {errors} 件あります。エラーがある間は配信されません。{how}"
        ));
    }
    if samples.rows.skipped > 0 {
        notes.push(format!(
            "患者ファイルの {} 行は読めなかったため、見本から外しました（行番号と理由は標準エラー出力に表示）。",
            samples.rows.skipped
        ));
    }
    if samples.rows.unreadable > 0 {
        notes.push(format!(
            "患者ファイルの {} 行に読めない値がありました（行番号と列は標準エラー出力に表示）。",
            samples.rows.unreadable
        ));
    }
    if samples.records.is_empty() {
        notes.push("患者ファイルに患者がいないため、メッセージは表示できません。".to_owned());
    }
    notes
}

/// What every step's part of the sheet is made from.
struct SheetContext<'a> {
    file: &'a SourceFile,
    rules: Option<&'a RuleSet>,
    declared: &'a Declared,
    schema: &'a RecordSchema,
    now: DateTime<Utc>,
    samples: &'a Samples,
    env: minijinja::Environment<'static>,
}

impl SheetContext<'_> {
    /// The steps (already in stage order) grouped by their first stage.
    fn groups(
        &self,
        steps: &[StepOutline],
        store: &mut TemplateStore,
        sorted: &mut findings::Sorted,
    ) -> Vec<StageGroup> {
        let mut groups: Vec<StageGroup> = Vec::new();
        let mut current: Option<Option<usize>> = None;
        for step in steps {
            let stage = step.stages.first().copied();
            if current != Some(stage) {
                current = Some(stage);
                groups.push(StageGroup {
                    heading: match stage {
                        Some(stage) => format!("ステージ：{}", self.declared.stages[stage]),
                        None => "ステージの指定がないステップ".to_owned(),
                    },
                    steps: Vec::new(),
                });
            }
            let sheet = self.step(step, store, sorted);
            if let Some(group) = groups.last_mut() {
                group.steps.push(sheet);
            }
        }
        groups
    }

    fn step(
        &self,
        step: &StepOutline,
        store: &mut TemplateStore,
        sorted: &mut findings::Sorted,
    ) -> StepSheet {
        let id = match (self.rules, &step.name) {
            (Some(rules), _) => rules.steps[step.index].id.clone(),
            (None, Some(name)) => name.clone(),
            (None, None) => format!("（名前なし・{}行目）", step.line),
        };
        let mut facts = vec![
            (
                "タイミング".to_owned(),
                format!("{}（ルールの記述：{}）", step.timing, step.timing_source),
            ),
            ("条件".to_owned(), step.when.clone()),
        ];
        if !step.unless.is_empty() {
            facts.push(("送らない条件".to_owned(), step.unless.join(" / ")));
        }
        if let Some(within) = &step.within {
            facts.push(("期限".to_owned(), within.clone()));
        }
        facts.push(("配信の種類".to_owned(), step.purpose.clone()));
        facts.push(("優先度".to_owned(), step.priority.to_owned()));
        let sample = self.samples.of(step.index);
        let templates: Vec<&str> = step.variants.iter().map(|(t, _)| t.as_str()).collect();
        StepSheet {
            id,
            line: step.line,
            comment: step.comment.clone(),
            facts,
            sample: sample_words(sample),
            variants: step
                .variants
                .iter()
                .map(|(name, weight)| self.variant(name, *weight, sample, store))
                .collect(),
            findings: sorted.of_step(self.file, step.span, &templates),
            allowances: findings::allowances(step, &templates, store, self.file),
        }
    }

    fn variant(
        &self,
        name: &str,
        weight: Option<u32>,
        sample: Option<(&PatientRecord, Chosen)>,
        store: &mut TemplateStore,
    ) -> VariantSheet {
        let share = weight.map(|w| format!("A/B：{w}%"));
        let failed = |why: String| VariantSheet {
            template: name.to_owned(),
            share: share.clone(),
            notification: String::new(),
            notification_source: "",
            exposed: Vec::new(),
            bubbles: String::new(),
            failure: Some(why),
        };
        let Ok(template) = store.get(name) else {
            return failed("テンプレートを読み込めません（検査の指摘を参照）".to_owned());
        };
        let Some((patient, _)) = sample else {
            return failed("見本の患者がいません".to_owned());
        };
        let clinic = self
            .rules
            .map_or(Some(self.declared.clinic.as_str()), |r| r.clinic.as_deref());
        let context = template::patient_context(patient, self.schema, clinic, self.now);
        match template.messages(&self.env, &context, None) {
            Ok(messages) => VariantSheet::rendered(
                name.to_owned(),
                share,
                &messages,
                &self.declared.clinic,
                &super::preview::columns(patient, self.schema),
            ),
            // Names the template and the field, never the patient's values.
            Err(error) => failed(error.to_string()),
        }
    }
}

fn sample_words(sample: Option<(&PatientRecord, Chosen)>) -> String {
    let Some((patient, chosen)) = sample else {
        return "なし（患者ファイルに患者がいません）".to_owned();
    };
    let how = match chosen {
        Chosen::Given => "指定された患者",
        Chosen::Applies => "このステップのステージと条件に合う最初の患者",
        Chosen::InStage => {
            "このステップのステージの最初の患者（条件に合う患者はいないか、評価できません）"
        }
        Chosen::First => "ファイルの最初の患者（このステップのステージの患者はいません）",
    };
    format!("{}行目・ID {}（{how}）", patient.line, patient.id)
}
