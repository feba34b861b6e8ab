//! Differential fuzzing (`janitor-harness fuzz --target A --target B`):
//! seeded random request sequences drawn from [`model`], each run against a
//! fresh environment of both runners and compared as replay compares a
//! golden (responses, rows, Redis keys and messages, stored files), with A in
//! the golden's place. A ledgered divergence is not a difference (the gate
//! checks the ledger's promises; the fuzzer only uses it to excuse). A
//! differing sequence is shrunk ([`shrink`]) and written, recorded against
//! A, as a scenario file: `replay --target B` reproduces it, and `record`
//! re-records it against any reference runner.

pub mod model;
pub mod shrink;

use crate::check::golden_outputs;
use crate::compare::{compare_outputs, Difference};
use crate::ledger::Ledger;
use crate::scenario::Scenario;
use crate::target::TargetSpec;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Options {
    pub sequences: usize,
    pub seed: u64,
    pub max_steps: usize,
    pub out: Option<PathBuf>,
    /// Sequences run at once (each on its own pair of environments).
    pub jobs: usize,
}

/// One cause of difference, after shrinking.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The sequence it was found in.
    pub sequence: String,
    pub steps_before: usize,
    /// The shrunk scenario, with A's answers recorded.
    pub scenario: Scenario,
    pub signature: BTreeSet<String>,
    pub differences: Vec<Difference>,
    /// Other differing sequences with the same cause.
    pub also_in: Vec<String>,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub sequences: usize,
    pub differing: usize,
    pub findings: Vec<Finding>,
    pub errors: Vec<String>,
}

impl Report {
    pub fn closing_line(&self) -> String {
        let mut line = format!(
            "{} sequences, {} differing ({} distinct after shrinking)",
            self.sequences,
            self.differing,
            self.findings.len()
        );
        if !self.errors.is_empty() {
            line.push_str(&format!(", {} errors", self.errors.len()));
        }
        line
    }

    pub fn json(&self) -> Value {
        json!({
            "sequences": self.sequences,
            "differing": self.differing,
            "distinct": self.findings.len(),
            "errors": self.errors,
            "findings": self.findings.iter().map(|f| json!({
                "sequence": f.sequence,
                "also_in": f.also_in,
                "steps_before": f.steps_before,
                "steps_after": f.scenario.steps.len(),
                "seed_rows_after": f.scenario.seed_sql.len(),
                "file": f.file,
                "signature": f.signature,
                "differences": f.differences.iter().map(|d| json!({"path": d.path, "a": d.expected, "b": d.actual})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// A's recording of `s` and B's differences from it that the ledger does
/// not excuse, that A does not show against itself and that B shows again
/// on a second run (empty: they agree).
///
/// Against a runner started as a command, background work (the reschedule
/// after an abort) races with the sequence's next request, in Python as in
/// ours: one run may see the new queue row and abort it too, another not.
/// Such a difference is timing, not behaviour; only differing sequences pay
/// for the second runs.
pub async fn compare(
    s: &Scenario,
    a: &TargetSpec,
    b: &TargetSpec,
    ledger: &Ledger,
) -> anyhow::Result<(Scenario, Vec<Difference>)> {
    compare_with(s, a, b, ledger, true).await
}

/// [`compare`]; without `repeat_b` B runs once (the shrinker's attempts,
/// on a sequence whose difference B has already repeated).
pub async fn compare_with(
    s: &Scenario,
    a: &TargetSpec,
    b: &TargetSpec,
    ledger: &Ledger,
    repeat_b: bool,
) -> anyhow::Result<(Scenario, Vec<Difference>)> {
    let recorded = crate::record::record(s, a).await?;
    let golden = golden_outputs(&recorded);
    let mut unexplained = unexplained_paths(s, b, &recorded, &golden, ledger).await?;
    if !unexplained.is_empty() {
        let again = crate::replay::run(s, a).await?;
        let unstable: BTreeSet<String> = compare_outputs(&golden, &again.doc)
            .into_iter()
            .map(|d| d.path)
            .collect();
        unexplained.retain(|d| !unstable.contains(&d.path));
    }
    if repeat_b && !unexplained.is_empty() {
        let repeated: BTreeSet<String> = unexplained_paths(s, b, &recorded, &golden, ledger)
            .await?
            .into_iter()
            .map(|d| d.path)
            .collect();
        unexplained.retain(|d| repeated.contains(&d.path));
    }
    Ok((recorded, unexplained))
}

/// One run of B against A's recording: the differences neither timing
/// noise nor the ledger explains.
async fn unexplained_paths(
    s: &Scenario,
    b: &TargetSpec,
    recorded: &Scenario,
    golden: &Value,
    ledger: &Ledger,
) -> anyhow::Result<Vec<Difference>> {
    let observed = crate::replay::run(s, b).await?;
    let diffs = compare_outputs(golden, &observed.doc)
        .into_iter()
        .filter(|d| !is_timing_noise(d, golden, &observed.doc))
        .collect();
    Ok(ledger.judge(recorded, &observed.doc, diffs).unexplained)
}

/// A rescheduled item's `estimated_duration` is the mean length of the
/// codebase's runs, including the runs the sequence itself made (a failed
/// assignment lasts a few wall-clock milliseconds), and its priority follows
/// from it: two runs of the same runner differ there by a little. Such a
/// difference is noise when the object's two `estimated_duration`s differ,
/// by less than a second (and so are such durations in seconds, and waiting
/// times summed from them) (recordings never show one: their runs' times come
/// from seeds and results).
fn is_timing_noise(d: &Difference, a: &Value, b: &Value) -> bool {
    let Some((parent, field)) = d.path.rsplit_once('.') else {
        return false;
    };
    // In seconds (published messages, queue answers): close, not equal.
    if [
        "estimated_duration",
        "estimated_duration_seconds",
        "wait_time",
        "cumulative_wait_time",
    ]
    .contains(&field)
    {
        let secs = |v: &Option<Value>| v.as_ref().and_then(Value::as_f64);
        if let (Some(x), Some(y)) = (secs(&d.expected), secs(&d.actual)) {
            return x != y && (x - y).abs() < 1.0;
        }
    }
    if !["estimated_duration", "priority"].contains(&field) {
        return false;
    }
    let seconds = |doc: &Value| {
        crate::ledger::lookup(doc, &format!("{parent}.estimated_duration"))
            .and_then(Value::as_str)
            .and_then(interval_seconds)
    };
    match (seconds(a), seconds(b)) {
        (Some(x), Some(y)) => x != y && (x - y).abs() < 1.0,
        _ => false,
    }
}

/// PostgreSQL's interval text (`[N day[s] ]HH:MM:SS[.ffffff]`) in seconds.
fn interval_seconds(text: &str) -> Option<f64> {
    let (days, clock) = match text.split_once(" day") {
        Some((d, rest)) => (
            d.trim().parse::<f64>().ok()?,
            rest.trim_start_matches('s').trim(),
        ),
        None => (0.0, text),
    };
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let sign = if h.starts_with('-') { -1.0 } else { 1.0 };
    let secs = h.trim_start_matches('-').parse::<f64>().ok()? * 3600.0
        + m.parse::<f64>().ok()? * 60.0
        + s.parse::<f64>().ok()?;
    Some(days * 86400.0 + sign * secs)
}

/// What a difference is about, independent of where in the sequence: the
/// route of the step (`POST /active-runs: response.json.id`) or the
/// document path with row numbers dropped (`db_after.run[].result_code`).
pub fn signature(s: &Scenario, diffs: &[Difference]) -> BTreeSet<String> {
    let rows = regex::Regex::new(r"\[\d+\]").expect("regex");
    diffs
        .iter()
        .map(|d| {
            if let Some(rest) = d.path.strip_prefix("steps[") {
                if let Some((n, tail)) = rest.split_once(']') {
                    if let Some(step) = n.parse::<usize>().ok().and_then(|i| s.steps.get(i)) {
                        let tail = rows.replace_all(tail, "[]");
                        return format!("{}:{tail}", model::route_of(step));
                    }
                }
            }
            rows.replace_all(&d.path, "[]").into_owned()
        })
        .collect()
}

/// Draws, runs and compares `opts.sequences` sequences, shrinks each
/// distinct difference and writes it to `opts.out`.
pub async fn run(
    a: &TargetSpec,
    b: &TargetSpec,
    ledger: &Ledger,
    opts: &Options,
) -> anyhow::Result<Report> {
    let bases: Vec<Scenario> = model::BASES
        .iter()
        .map(|n| Scenario::load(&crate::golden_dir().join(format!("{n}.json"))))
        .collect::<anyhow::Result<_>>()?;
    let tty = std::io::stderr().is_terminal();
    let mut report = Report {
        sequences: opts.sequences,
        ..Default::default()
    };
    let mut done = 0;
    let mut differing: Vec<(usize, Scenario, Vec<Difference>)> = Vec::new();
    let mut results = futures::stream::iter(0..opts.sequences)
        .map(|i| {
            let s = model::sequence(&bases, opts.seed, i, opts.max_steps);
            async move {
                let r = compare(&s, a, b, ledger).await;
                (i, s, r)
            }
        })
        .buffer_unordered(opts.jobs.max(1));
    while let Some((i, s, r)) = results.next().await {
        done += 1;
        match r {
            Ok((_, d)) if d.is_empty() => {}
            Ok((_, d)) => differing.push((i, s, d)),
            Err(e) => report.errors.push(format!("{}: {e:#}", s.name)),
        }
        if tty {
            eprint!(
                "\r\x1b[K[{done}/{}] {} differing, {} errors",
                opts.sequences,
                differing.len(),
                report.errors.len()
            );
        }
    }
    drop(results);
    if tty {
        eprintln!();
    }
    report.differing = differing.len();
    // In sequence order, so the findings do not depend on timing.
    differing.sort_by_key(|(i, _, _)| *i);
    for (_, s, diffs) in differing {
        let sig = signature(&s, &diffs);
        if let Some(f) = report
            .findings
            .iter_mut()
            .find(|f| !f.signature.is_disjoint(&sig))
        {
            f.also_in.push(s.name.clone());
            continue;
        }
        if tty {
            eprintln!("shrinking {} ({} steps)", s.name, s.steps.len());
        }
        let steps_before = s.steps.len();
        let (scenario, differences) = shrink::shrink(&s, &sig, a, b, ledger).await;
        let mut finding = Finding {
            sequence: s.name.clone(),
            steps_before,
            signature: signature(&scenario, &differences),
            scenario,
            differences,
            also_in: Vec::new(),
            file: None,
        };
        if let Some(dir) = &opts.out {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("{}.json", finding.scenario.name));
            std::fs::write(&path, crate::record::to_golden_json(&finding.scenario)?)?;
            finding.file = Some(path);
        }
        report.findings.push(finding);
    }
    if let Some(dir) = &opts.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("fuzz-report.json"),
            serde_json::to_string_pretty(&report.json())? + "\n",
        )?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(path: &str, a: Value, b: Value) -> Difference {
        Difference {
            path: path.into(),
            expected: Some(a),
            actual: Some(b),
        }
    }

    #[test]
    fn only_sub_second_durations_of_reschedules_and_their_priorities_are_noise() {
        let doc = |d: &str, p: i64| json!({"db_after": {"queue": [{"estimated_duration": d, "priority": p}]}});
        let (a, b) = (doc("00:00:00.001097", 88021), doc("00:00:00.001096", 88017));
        let ed = "db_after.queue[0].estimated_duration";
        let pr = "db_after.queue[0].priority";
        let ed_diff = diff(ed, json!("00:00:00.001097"), json!("00:00:00.001096"));
        assert!(is_timing_noise(&ed_diff, &a, &b));
        assert!(is_timing_noise(
            &diff(pr, json!(88021), json!(88017)),
            &a,
            &b
        ));
        let seeded = doc("00:00:30", 5);
        assert!(!is_timing_noise(&ed_diff, &seeded, &b));
        assert!(!is_timing_noise(
            &diff(pr, json!(5), json!(88017)),
            &seeded,
            &b
        ));
        assert!(!is_timing_noise(
            &diff("db_after.queue[0].bucket", json!(0), json!(1)),
            &a,
            &b
        ));
    }

    #[test]
    fn waiting_times_in_seconds_are_noise_only_within_a_second() {
        let none = json!({});
        let at = "steps[2].response.json.queue[0].wait_time";
        assert!(is_timing_noise(
            &diff(at, json!(12.25), json!(12.5)),
            &none,
            &none
        ));
        assert!(!is_timing_noise(
            &diff(at, json!(12.25), json!(14.0)),
            &none,
            &none
        ));
        assert!(!is_timing_noise(
            &diff(at, json!(12.25), json!(12.25)),
            &none,
            &none
        ));
        // Not a number: a change of kind is a difference, whatever the field.
        assert!(!is_timing_noise(
            &diff(at, json!(12.25), json!("12.25")),
            &none,
            &none
        ));
    }

    #[test]
    fn signatures_name_the_route_not_the_position() {
        let s = model::sequence(
            &[Scenario::load(&crate::golden_dir().join("finish-success.json")).unwrap()],
            1,
            0,
            1,
        );
        let route = model::route_of(&s.steps[0]);
        let sig = signature(
            &s,
            &[
                diff("steps[0].response.status", json!(200), json!(400)),
                diff("db_after.run[3].code", json!("a"), json!("b")),
            ],
        );
        let want: BTreeSet<String> = [
            format!("{route}:.response.status"),
            "db_after.run[].code".into(),
        ]
        .into_iter()
        .collect();
        assert_eq!(sig, want);
    }
}
