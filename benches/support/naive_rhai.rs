//! Contestant (b), the naive embedded design: every step is a rhai script that holds both the
//! step's condition and its due-time arithmetic (`thirty_steps.rhai`, by hand), run for every
//! patient against a rhai map of the patient (`steprule::patient_map`, the map
//! steprule's own rhai conditions see).
//!
//! Each script returns the step's candidate sends as a flat array `[at, expires, at, expires,
//! …]` of Unix seconds, or `()`. The host sorts them and applies the daily cap (a loop over a
//! few sends, written in Rust as any host would), then counts those in the window. Quiet hours
//! (21:00–09:00), the cap (2 per day) and the clinic's UTC+9 are written into the scripts and
//! the host, as a clinic's own scripts would have them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rhai::{Dynamic, Engine, Scope, AST};
use steprule::PatientRecord;
use steprule::TimingPlan;
use steprule::{patient_map, Window};

/// The hand-written scripts: helpers, then one `// step ID` section per step, in file order.
const SCRIPTS: &str = include_str!("thirty_steps.rhai");

/// The helpers and each step's script, by step id.
fn sections() -> (&'static str, Vec<(&'static str, &'static str)>) {
    let mut parts = SCRIPTS.split("\n// step ");
    let helpers = parts.next().unwrap_or_default();
    let steps = parts
        .map(|part| part.split_once('\n').unwrap_or((part, "")))
        .collect();
    (helpers, steps)
}

/// The daily cap and the hour quiet hours end, as the host knows them.
const CAP_PER_DAY: usize = 2;
const QUIET_ENDS: i64 = 9 * 3600;
const UTC_OFFSET: i64 = 9 * 3600;

/// The 30 compiled scripts and the engine that runs them.
pub struct NaiveRhai {
    engine: Engine,
    /// Step id and compiled script, in file order.
    steps: Vec<(String, AST)>,
}

/// One candidate send from a script, in Unix seconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    at: i64,
    step: usize,
    expires: i64,
}

impl NaiveRhai {
    /// Compiles the scripts; the plan's steps must be the fixture's, in the same order.
    pub fn new(plan: &TimingPlan) -> Result<Self, String> {
        let (helpers, scripts) = sections();
        let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        let ours: Vec<&str> = scripts.iter().map(|(id, _)| *id).collect();
        if ids != ours {
            return Err(format!(
                "thirty_steps.rhai has {ours:?}, the plan has {ids:?}"
            ));
        }
        let mut engine = Engine::new();
        // The same guard steprule puts on its own rhai conditions.
        engine.set_max_operations(steprule::ScriptEngine::new().engine().max_operations());
        let steps = scripts
            .iter()
            .map(|(id, script)| {
                engine
                    .compile(format!("{helpers}\n{script}"))
                    .map(|ast| (id.to_string(), ast))
                    .map_err(|err| format!("thirty_steps.rhai, step {id}: {err}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(NaiveRhai { engine, steps })
    }

    /// Runs every script for every patient; sends in the window, per step.
    pub fn run(
        &self,
        patients: &[PatientRecord],
        plan: &TimingPlan,
        window: Window,
    ) -> Result<Vec<u64>, String> {
        let now = window.now.timestamp();
        let (from, to) = (window.from.timestamp(), window.to.timestamp());
        let mut per_step = vec![0; self.steps.len()];
        let mut scope = Scope::new();
        let mut candidates = Vec::new();
        let mut kept = Vec::new();
        for patient in patients {
            scope.clear();
            scope.push("patient", patient_map(patient, plan, window.now));
            scope.push("now", now);
            scope.push("window_end", to);
            let base = scope.len();
            candidates.clear();
            for (step, (id, ast)) in self.steps.iter().enumerate() {
                let result: Dynamic = self
                    .engine
                    .eval_ast_with_scope(&mut scope, ast)
                    .map_err(|err| format!("{id} for {}: {err}", patient.id))?;
                scope.rewind(base);
                if result.is_unit() {
                    continue;
                }
                let times = result
                    .into_array()
                    .map_err(|t| format!("{t} from a script"))?;
                for pair in times.chunks_exact(2) {
                    let at = pair[0].as_int().map_err(|t| t.to_owned())?;
                    let expires = pair[1].as_int().map_err(|t| t.to_owned())?;
                    candidates.push(Candidate { at, step, expires });
                }
            }
            apply_cap(&mut candidates, &mut kept);
            for send in &kept {
                if send.at >= from && send.at < to {
                    per_step[send.step] += 1;
                }
            }
        }
        Ok(per_step)
    }
}

/// At most `CAP_PER_DAY` sends per local day, earliest first (then in file order); the rest
/// move to the next day's 09:00 while not expired — the evaluator's rule.
fn apply_cap(candidates: &mut Vec<Candidate>, kept: &mut Vec<Candidate>) {
    kept.clear();
    let mut pending: BinaryHeap<Reverse<Candidate>> = candidates.drain(..).map(Reverse).collect();
    let mut day = i64::MIN;
    let mut used = 0;
    while let Some(Reverse(mut send)) = pending.pop() {
        let send_day = (send.at + UTC_OFFSET).div_euclid(86_400);
        if send_day != day {
            (day, used) = (send_day, 0);
        }
        if used < CAP_PER_DAY {
            used += 1;
            kept.push(send);
            continue;
        }
        let next = (send_day + 1) * 86_400 + QUIET_ENDS - UTC_OFFSET;
        if next < send.expires {
            send.at = next;
            pending.push(Reverse(send));
        }
    }
}
