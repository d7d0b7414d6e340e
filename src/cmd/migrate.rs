//! `reconfd migrate --from DIR --to DIR [--dry-run] [--force]`: converts a confd tree into a
//! reconfd tree and prints, per resource, what it did. The work is [`crate::migrate`]'s.

use std::fmt::Write as _;

use crate::exit;
use crate::migrate::{self, EntryOutcome, FileStatus, Options, Report};

/// Runs the migration; exit 0 when every resource was migrated and written (kept as a Go
/// template counts), 1 when some resource failed or a file was in the way, 2 when the
/// directories cannot be used.
pub fn run(opts: &Options) -> u8 {
    match migrate::migrate(opts) {
        Ok(report) => {
            print!("{}", format_report(&report, opts.dry_run));
            if report.complete() {
                exit::SUCCESS
            } else {
                exit::FAILED
            }
        }
        Err(e) => {
            eprintln!("reconfd migrate: {e}");
            exit::USAGE
        }
    }
}

/// The report as printed: one paragraph per resource, then a summary line.
pub fn format_report(report: &Report, dry_run: bool) -> String {
    let mut out = String::new();
    let (mut translated, mut kept, mut failed, mut blocked) = (0, 0, 0, 0);
    for e in &report.entries {
        let head = match &e.target {
            Some(t) => format!("{} -> {}", e.source.display(), t.display()),
            None => e.source.display().to_string(),
        };
        match &e.outcome {
            EntryOutcome::Translated(t) => {
                translated += 1;
                let _ = writeln!(out, "{head}: translated to Tera ({})", t.display());
            }
            EntryOutcome::KeptGo(t, why) => {
                kept += 1;
                let _ = writeln!(out, "{head}: kept as Go template ({}): {why}", t.display());
            }
            EntryOutcome::Failed(why) => {
                failed += 1;
                let _ = writeln!(out, "{head}: not migrated: {why}");
            }
        }
        for n in &e.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for (path, status) in &e.files {
            let what = match (status, dry_run) {
                (FileStatus::Written, false) => "wrote".to_owned(),
                (FileStatus::Written, true) => "would write".to_owned(),
                (FileStatus::Overwritten, false) => "overwrote".to_owned(),
                (FileStatus::Overwritten, true) => "would overwrite".to_owned(),
                (FileStatus::Unchanged, _) => "unchanged".to_owned(),
                (FileStatus::Exists, _) => {
                    "exists with other content, not overwritten (use --force)".to_owned()
                }
                (FileStatus::Failed(e), _) => format!("cannot write ({e})"),
            };
            let _ = writeln!(out, "  {what}: {}", path.display());
        }
        if !matches!(e.outcome, EntryOutcome::Failed(_))
            && e.files.iter().any(|(_, s)| !s.in_place())
        {
            blocked += 1;
        }
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = write!(
        out,
        "{} resource(s): {translated} translated to Tera, {kept} kept as Go templates, \
         {failed} not migrated",
        report.entries.len()
    );
    if blocked > 0 {
        let _ = write!(out, ", {blocked} not written (files in the way)");
    }
    out.push('\n');
    if dry_run {
        out.push_str("dry run: nothing was written\n");
    }
    out
}
