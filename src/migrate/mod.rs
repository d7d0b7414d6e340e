//! `reconfd migrate`: turns a confd tree (`conf.d/**/*toml` + `templates/`) into a reconfd
//! tree (`conf.d/*.toml` + `templates/`), resource by resource.
//!
//! - [`crate::confd::resource`] reads confd's resource files with confd's rules (the one
//!   reader `reconfd confd` uses too) and writes reconfd's;
//! - [`translate`] turns a Go template into Tera where that is exact, or says why not;
//! - [`crate::template::golex`] holds the lexical facts of Go templates the translation
//!   relies on.
//!
//! This module walks the tree, names the output files (confd's conf.d may be nested,
//! reconfd's is flat), decides per resource "translated to Tera" or "kept as Go template",
//! and writes (or, for a dry run, only plans) the files. It never overwrites a file that
//! differs unless told to (`force`); an identical file counts as written, so running the
//! migration again is harmless. Printing the report is the caller's business.

pub mod translate;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::confd::resource;
use translate::Outcome;

/// What to migrate and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The confd directory (holding `conf.d/` and `templates/`).
    pub from: PathBuf,
    /// The reconfd directory to write.
    pub to: PathBuf,
    /// Plan only: write nothing.
    pub dry_run: bool,
    /// Overwrite files that exist and differ.
    pub force: bool,
}

/// A problem with the command itself (exit 2): the trees cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// `--from` has no `conf.d` directory.
    #[error("{0}: not a confd directory (it has no conf.d/): {1}")]
    NoConfd(PathBuf, std::io::Error),
    /// `--from` and `--to` are the same directory, or `--to` lies inside what is read.
    #[error(
        "--to {0} is --from or inside its conf.d/ or templates/; migrate into another directory"
    )]
    SameDir(PathBuf),
}

/// The whole migration: one entry per confd resource file, in confd's order.
#[derive(Debug, Default)]
pub struct Report {
    /// Per resource.
    pub entries: Vec<Entry>,
    /// About the tree as a whole, one line each.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether every resource was migrated and every file is in place (or would be).
    pub fn complete(&self) -> bool {
        self.entries.iter().all(|e| {
            !matches!(e.outcome, EntryOutcome::Failed(_))
                && e.files.iter().all(|(_, s)| s.in_place())
        })
    }
}

/// One confd resource and what became of it.
#[derive(Debug)]
pub struct Entry {
    /// The confd resource file.
    pub source: PathBuf,
    /// The reconfd resource file, when one is (or would be) written.
    pub target: Option<PathBuf>,
    /// Translated, kept as Go, or failed.
    pub outcome: EntryOutcome,
    /// What changed on the way, one line each.
    pub notes: Vec<String>,
    /// The files this resource needs and their status, template first.
    pub files: Vec<(PathBuf, FileStatus)>,
}

/// How a resource was migrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    /// Its template was translated to Tera (the new template file).
    Translated(PathBuf),
    /// Its template stays a Go template (the copied file), for this reason
    /// (`template:line:col: why`).
    KeptGo(PathBuf, String),
    /// It could not be migrated (file and line where known).
    Failed(String),
}

/// What happened (or would happen, in a dry run) to one output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Created.
    Written,
    /// An existing, different file was replaced (`--force`).
    Overwritten,
    /// The file already holds exactly this content.
    Unchanged,
    /// The file exists with other content and was left alone (no `--force`).
    Exists,
    /// Writing failed (the I/O error).
    Failed(String),
}

impl FileStatus {
    /// Whether the file holds (or, in a dry run, would hold) the migrated content.
    pub fn in_place(&self) -> bool {
        matches!(self, Self::Written | Self::Overwritten | Self::Unchanged)
    }
}

/// A template, migrated once however many resources use it.
#[derive(Debug, Clone)]
struct MigratedTemplate {
    /// Path under `<to>/templates`.
    rel: PathBuf,
    content: String,
    outcome: EntryOutcome,
    status: Option<FileStatus>,
}

/// Migrates `opts.from` into `opts.to`.
pub fn migrate(opts: &Options) -> Result<Report, UsageError> {
    let confd_dir = opts.from.join("conf.d");
    if let Err(e) = std::fs::read_dir(&confd_dir) {
        return Err(UsageError::NoConfd(opts.from.clone(), e));
    }
    let to = resolved(&opts.to);
    let from = resolved(&opts.from);
    if to == from || to.starts_with(from.join("conf.d")) || to.starts_with(from.join("templates")) {
        return Err(UsageError::SameDir(opts.to.clone()));
    }
    let mut files = Vec::new();
    walk(&confd_dir, &mut files);

    let mut report = Report::default();
    let confd_toml = opts.from.join("confd.toml");
    if confd_toml.is_file() {
        report.notes.push(format!(
            "{} (the daemon's settings) is not migrated: reconfd confd reads it as it is; \
             for reconfd run, write reconfd.toml (docs/migrating-from-confd.md)",
            confd_toml.display()
        ));
    }
    let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut templates: BTreeMap<PathBuf, MigratedTemplate> = BTreeMap::new();
    // Output template path → the confd template it holds.
    let mut template_names: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&confd_dir).unwrap_or(&file).to_owned();
        let mut entry = Entry {
            source: file.clone(),
            target: None,
            outcome: EntryOutcome::Failed(String::new()),
            notes: Vec::new(),
            files: Vec::new(),
        };
        let name = resource_name(&rel, &mut taken, &mut entry.notes);
        let target = PathBuf::from("conf.d").join(&name);
        match migrate_one(opts, &file, &mut entry, &mut templates, &mut template_names) {
            Ok(content) => {
                let path = opts.to.join(&target);
                // Never point a resource at a template that is not the one it needs.
                if entry.files.iter().all(|(_, s)| s.in_place()) {
                    let status = write_file(&path, &content, opts);
                    entry.files.push((path.clone(), status));
                }
                entry.target = Some(path);
            }
            Err(msg) => entry.outcome = EntryOutcome::Failed(msg),
        }
        report.entries.push(entry);
    }
    Ok(report)
}

/// `p` made absolute, with symbolic links resolved as far as the path exists.
fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// Migrates one resource file: its template (once) and the resource text to write.
fn migrate_one(
    opts: &Options,
    file: &Path,
    entry: &mut Entry,
    templates: &mut BTreeMap<PathBuf, MigratedTemplate>,
    template_names: &mut BTreeMap<PathBuf, PathBuf>,
) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let r = resource::parse(file, &text).map_err(|d| d.to_string())?;
    entry.notes.extend(r.notes.iter().cloned());

    // confd joins src under its templates directory even when src is absolute.
    let src_rel = clean_relative(&r.src).ok_or_else(|| {
        format!(
            "{}: src {:?} points outside {}",
            file.display(),
            r.src,
            opts.from.join("templates").display()
        )
    })?;
    if !templates.contains_key(&src_rel) {
        let t = migrate_template(opts, &src_rel, template_names)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        templates.insert(src_rel.clone(), t);
    }
    let t = templates.get_mut(&src_rel).expect("inserted");
    let path = opts.to.join("templates").join(&t.rel);
    let status = t
        .status
        .get_or_insert_with(|| write_file(&path, &t.content, opts))
        .clone();
    entry.files.push((path, status));
    entry.outcome = t.outcome.clone();
    let how = match &t.outcome {
        EntryOutcome::Translated(_) => "translated to Tera".to_owned(),
        EntryOutcome::KeptGo(_, why) => format!("kept as a Go template: {why}"),
        EntryOutcome::Failed(_) => unreachable!("failed templates are errors"),
    };
    let header = vec![format!(
        "Template {} ({how}).",
        opts.from.join("templates").join(&src_rel).display()
    )];
    let src = t.rel.to_string_lossy().into_owned();
    // A Go template not named *.tmpl needs the engine said.
    let go = matches!(t.outcome, EntryOutcome::KeptGo(..)) && !src.ends_with(".tmpl");
    Ok(resource::render(&r, &src, go, file, &header))
}

/// Reads and translates (or keeps) the confd template `src_rel`.
fn migrate_template(
    opts: &Options,
    src_rel: &Path,
    names: &mut BTreeMap<PathBuf, PathBuf>,
) -> Result<MigratedTemplate, String> {
    let path = opts.from.join("templates").join(src_rel);
    let source = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "template {}: {}",
            path.display(),
            if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist (confd fails this resource: Missing template)".to_owned()
            } else {
                format!("cannot read: {e}")
            }
        )
    })?;
    let (content, go, reason) = match translate::translate(&source) {
        Outcome::Translated(tera) => (tera, false, None),
        Outcome::Refused(r) => (source, true, Some(format!("{}:{r}", path.display()))),
        Outcome::Invalid(msg) => {
            return Err(format!(
                "template {} does not parse as a Go template: {msg}",
                path.display()
            ))
        }
    };
    let rel = template_name(src_rel, go, names);
    let outcome = match reason {
        None => EntryOutcome::Translated(opts.to.join("templates").join(&rel)),
        Some(why) => EntryOutcome::KeptGo(opts.to.join("templates").join(&rel), why),
    };
    Ok(MigratedTemplate {
        rel,
        content,
        outcome,
        status: None,
    })
}

/// The output name of a template: its confd name, except that a translated `x.tmpl` becomes
/// `x.tera` (reconfd reads `.tmpl` as Go); a clash gets `-2`, `-3`, ... before the extension.
fn template_name(src_rel: &Path, go: bool, names: &mut BTreeMap<PathBuf, PathBuf>) -> PathBuf {
    let ext = match src_rel.extension().map(|e| e.to_string_lossy()) {
        Some(e) if e == "tmpl" && !go => ".tera".to_owned(),
        Some(e) => format!(".{e}"),
        None => String::new(),
    };
    let stem = src_rel.with_extension("").to_string_lossy().into_owned();
    let mut n = 1;
    loop {
        let candidate = if n == 1 {
            PathBuf::from(format!("{stem}{ext}"))
        } else {
            PathBuf::from(format!("{stem}-{n}{ext}"))
        };
        match names.get(&candidate) {
            Some(owner) if owner != src_rel => n += 1,
            _ => {
                names.insert(candidate.clone(), src_rel.to_owned());
                return candidate;
            }
        }
    }
}

/// confd's `filepath.Join(templates, src)` as a path relative to the templates directory, or
/// `None` if it leaves it.
fn clean_relative(src: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(src).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The flat reconfd file name for confd resource `rel` (relative to conf.d): directories
/// joined with `-`, the `toml` ending made `.toml`, made unique with `-2`, `-3`, ...
fn resource_name(
    rel: &Path,
    taken: &mut BTreeMap<String, PathBuf>,
    notes: &mut Vec<String>,
) -> String {
    let joined = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("-");
    let stem = joined.strip_suffix("toml").unwrap_or(&joined);
    let stem = stem.strip_suffix('.').unwrap_or(stem);
    let stem = if stem.is_empty() { "resource" } else { stem };
    let mut name = format!("{stem}.toml");
    let mut n = 2;
    while taken.contains_key(&name) {
        name = format!("{stem}-{n}.toml");
        n += 1;
    }
    if name != format!("{stem}.toml") {
        notes.push(format!(
            "named {name}: {stem}.toml is taken by {}",
            taken[&format!("{stem}.toml")].display()
        ));
    }
    taken.insert(name.clone(), rel.to_owned());
    name
}

/// confd's walk of conf.d: every non-directory whose name matches `*toml`, recursively, in
/// lexical order (Go's filepath.Walk; a symlink is not followed, and counts as a file).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            walk(&path, out);
        } else if e.file_name().to_string_lossy().ends_with("toml") {
            out.push(path);
        }
    }
}

/// Writes `content` to `path` unless that would replace a different file without `force`;
/// in a dry run, only says what would happen.
fn write_file(path: &Path, content: &str, opts: &Options) -> FileStatus {
    let status = match std::fs::read(path) {
        Ok(have) if have == content.as_bytes() => return FileStatus::Unchanged,
        Ok(_) if !opts.force => return FileStatus::Exists,
        Ok(_) => FileStatus::Overwritten,
        Err(_) if path.exists() && !opts.force => return FileStatus::Exists,
        Err(_) => FileStatus::Written,
    };
    if opts.dry_run {
        return status;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Err(e) = std::fs::create_dir_all(dir) {
        return FileStatus::Failed(format!("{}: {e}", dir.display()));
    }
    match write_atomic(path, content, status == FileStatus::Written) {
        Ok(()) => status,
        // Someone created it meanwhile: leave it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => FileStatus::Exists,
        Err(e) => FileStatus::Failed(e.to_string()),
    }
}

/// A new file is created exclusively; a replaced one is written beside it and renamed over.
fn write_atomic(path: &Path, content: &str, new: bool) -> std::io::Result<()> {
    if new {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        f.write_all(content.as_bytes())?;
        return f.sync_all();
    }
    let mut tmp = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new(".")))?;
    tmp.write_all(content.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_flat_and_unique() {
        let mut taken = BTreeMap::new();
        let mut notes = Vec::new();
        let mut name = |p: &str| resource_name(Path::new(p), &mut taken, &mut notes);
        assert_eq!(name("web-nginx.toml"), "web-nginx.toml");
        assert_eq!(name("web/nginx.toml"), "web-nginx-2.toml");
        assert_eq!(name("db/pg.toml"), "db-pg.toml");
        assert_eq!(name("legacytoml"), "legacy.toml");
        assert_eq!(name("toml"), "resource.toml");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("web-nginx.toml is taken by web-nginx.toml"));
    }

    #[test]
    fn src_is_joined_under_templates_as_confd_does() {
        assert_eq!(clean_relative("a.tmpl"), Some("a.tmpl".into()));
        assert_eq!(clean_relative("/sub/a.tmpl"), Some("sub/a.tmpl".into()));
        assert_eq!(clean_relative("sub/../a.tmpl"), Some("a.tmpl".into()));
        assert_eq!(clean_relative("../a.tmpl"), None);
        assert_eq!(clean_relative("."), None);
    }

    #[test]
    fn template_names_keep_engines_apart() {
        let mut names = BTreeMap::new();
        let mut name = |src: &str, go: bool| template_name(Path::new(src), go, &mut names);
        assert_eq!(name("a.tmpl", true), PathBuf::from("a.tmpl"));
        // The same template again keeps its name.
        assert_eq!(name("a.tmpl", true), PathBuf::from("a.tmpl"));
        assert_eq!(name("b.tmpl", false), PathBuf::from("b.tera"));
        assert_eq!(name("b.tera", true), PathBuf::from("b-2.tera"));
        assert_eq!(name("c.conf", false), PathBuf::from("c.conf"));
        assert_eq!(name("sub/d.tmpl", false), PathBuf::from("sub/d.tera"));
    }
}
