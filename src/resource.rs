//! Template resources: `<confdir>/conf.d/*.toml`, each one `[template]` table with confd's
//! fields plus reconfd's own. Loading collects per-file problems (file and line) and keeps
//! going, so one broken resource never hides or stops the others.
//!
//! Two [`Dialect`]s: reconfd's own (flat `conf.d/*.toml`, unknown keys are errors) and
//! confd's (`reconfd confd`: conf.d walked recursively, unknown keys are warnings).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{
    BatchSettings, Dialect, Dur, EngineKind, Mode, NameOrId, ReloadLimit, Settings,
};
use crate::diag::Diagnostic;
use crate::keys;

/// Default time a `check_cmd` or `reload_cmd` may run before it is killed.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A resource file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    template: Spanned<RawTemplate>,
}

/// The `[template]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    src: Option<Spanned<String>>,
    engine: Option<EngineKind>,
    dest: Option<Spanned<String>>,
    #[serde(default)]
    keys: Vec<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    owner: Option<Spanned<NameOrId>>,
    group: Option<Spanned<NameOrId>>,
    uid: Option<Spanned<u32>>,
    gid: Option<Spanned<u32>>,
    mode: Option<Mode>,
    check_cmd: Option<Spanned<String>>,
    reload_cmd: Option<Spanned<String>>,
    debounce: Option<Dur>,
    max_wait: Option<Dur>,
    reload_limit: Option<ReloadLimit>,
    leading: Option<bool>,
    check_timeout: Option<Dur>,
    reload_timeout: Option<Dur>,
    min_keys: Option<usize>,
    max_shrink: Option<crate::guard::MaxShrink>,
    rollback: Option<bool>,
    lossy_utf8: Option<bool>,
}

/// One validated template resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource file's stem (`nginx` for `conf.d/nginx.toml`); names it in logs.
    pub name: String,
    /// The resource file.
    pub file: PathBuf,
    /// The template, resolved against `<confdir>/templates` when relative.
    pub src: PathBuf,
    /// The template's language: `engine` when set, else by `src`'s name (`.tmpl` is Go).
    pub engine: EngineKind,
    /// The file to keep in line.
    pub dest: PathBuf,
    /// Keys as the resource names them, relative to `prefix`, each with a leading `/`.
    pub keys: Vec<String>,
    /// Global prefix joined with the resource's prefix (`/` when neither is set).
    pub prefix: String,
    /// Owner to set, `None` = not managed.
    pub uid: Option<u32>,
    /// Group to set, `None` = not managed.
    pub gid: Option<u32>,
    /// Mode to set, `None` = keep the live file's, else 0644.
    pub mode: Option<u32>,
    /// Shell command run against the staged file; `{{.src}}` is the staged path.
    pub check_cmd: Option<String>,
    /// Shell command run after the file was installed.
    pub reload_cmd: Option<String>,
    /// How long `check_cmd` may run.
    pub check_timeout: Duration,
    /// How long `reload_cmd` may run.
    pub reload_timeout: Duration,
    /// Batching for `run`, and the guard against destructive renders.
    pub batch: BatchSettings,
    /// Put the previous file back when `reload_cmd` fails after an install.
    pub rollback: bool,
    /// Render values that are not valid UTF-8 with U+FFFD instead of failing.
    pub lossy_utf8: bool,
}

impl Resource {
    /// `dest` as resources are compared by: `//` and `/./` folded, lexically (symbolic links
    /// are not followed).
    pub fn dest_key(&self) -> PathBuf {
        self.dest.components().collect()
    }

    /// Full etcd keys this resource watches: each key joined under the prefix.
    pub fn watched(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| keys::join(&self.prefix, k))
            .collect()
    }
}

/// The result of scanning `conf.d`: the good resources and every problem found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Resources that validated, sorted by file name.
    pub resources: Vec<Resource>,
    /// Problems, each naming its file (and line where known).
    pub errors: Vec<Diagnostic>,
    /// Names of resource files that had errors, so callers can count them as failed.
    pub failed: Vec<PathBuf>,
    /// Things that do not stop a resource: keys the confd dialect ignores.
    pub warnings: Vec<Diagnostic>,
}

/// Reads every resource file in `<confdir>/conf.d` (which ones: see [`Dialect`]), in
/// file-name order.
pub fn load_all(settings: &Settings) -> Loaded {
    let dir = settings.confdir.join("conf.d");
    let mut loaded = Loaded::default();
    let mut files = Vec::new();
    if let Err(e) = find_files(&dir, settings.dialect, &mut files) {
        loaded.errors.push(e);
        loaded.failed.push(dir.clone());
        if files.is_empty() {
            return loaded;
        }
    }
    files.sort();
    for file in files {
        match load_file(settings, &file, &mut loaded.warnings) {
            Ok(mut r) => {
                if settings.dialect == Dialect::Confd {
                    let rel = file.strip_prefix(&dir).unwrap_or(&file).to_string_lossy();
                    r.name = rel.strip_suffix(".toml").unwrap_or(&rel).to_owned();
                }
                loaded.resources.push(r)
            }
            Err(errs) => {
                loaded.errors.extend(errs);
                loaded.failed.push(file);
            }
        }
    }
    refuse_shared_dests(&mut loaded);
    loaded
}

/// Two resources installing one file would overwrite each other's content at every change
/// (and reload the service each time), and one's sweep of stale staged files could remove
/// the other's staged file mid-install. Which of them owns the file is the operator's call,
/// so every resource of such a group is refused, naming the others; the rest run. Paths are
/// compared lexically (`/etc//a` is `/etc/a`); symbolic links are not followed.
fn refuse_shared_dests(loaded: &mut Loaded) {
    let mut by_dest: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    for (i, r) in loaded.resources.iter().enumerate() {
        by_dest.entry(r.dest_key()).or_default().push(i);
    }
    let mut refused = BTreeSet::new();
    for (dest, group) in by_dest.iter().filter(|(_, g)| g.len() > 1) {
        for &i in group {
            let others: Vec<String> = group
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| loaded.resources[j].file.display().to_string())
                .collect();
            loaded.errors.push(Diagnostic::file(
                &loaded.resources[i].file,
                format!(
                    "dest {} is also the dest of {}: resources sharing a file would overwrite each other at every change; give each its own dest",
                    dest.display(),
                    others.join(" and ")
                ),
            ));
            refused.insert(i);
        }
    }
    if refused.is_empty() {
        return;
    }
    for (i, r) in std::mem::take(&mut loaded.resources)
        .into_iter()
        .enumerate()
    {
        if refused.contains(&i) {
            loaded.failed.push(r.file);
        } else {
            loaded.resources.push(r);
        }
    }
}

/// Collects the resource files under `dir` into `out`; the first directory that cannot be
/// read is the error (the files found elsewhere are still collected).
fn find_files(dir: &Path, dialect: Dialect, out: &mut Vec<PathBuf>) -> Result<(), Diagnostic> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Diagnostic::file(dir, format!("cannot read resource directory: {e}")))?;
    let mut result = Ok(());
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        match dialect {
            Dialect::Reconfd => {
                if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
                    out.push(path);
                }
            }
            Dialect::Confd => {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let sub = find_files(&path, dialect, out);
                    result = result.and(sub);
                } else if entry.file_name().as_encoded_bytes().ends_with(b"toml") && path.is_file()
                {
                    out.push(path);
                }
            }
        }
    }
    result
}

/// Reads and validates one resource file, reporting every problem in it.
pub fn load_one(settings: &Settings, file: &Path) -> Result<Resource, Vec<Diagnostic>> {
    load_file(settings, file, &mut Vec::new())
}

/// [`load_one`], adding what the dialect only warns about to `warnings`.
fn load_file(
    settings: &Settings,
    file: &Path,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Resource, Vec<Diagnostic>> {
    let (text, raw) = read_raw(settings, file, warnings)?;
    let t = raw.template.get_ref();
    let table_at = raw.template.span().start;
    let mut errs = Vec::new();
    let at = At { file, text: &text };

    let src = template_src(settings, &at, t.src.as_ref(), table_at, &mut errs);
    let dest = template_dest(&at, t.dest.as_ref(), table_at, &mut errs);
    let rel_keys = watched_keys(settings, &at, &t.keys, table_at, &mut errs);
    let uid = resolve_owner(
        file,
        &text,
        t.owner.as_ref(),
        t.uid.as_ref(),
        "owner",
        "uid",
        &mut errs,
        crate::users::uid_of,
    );
    let gid = resolve_owner(
        file,
        &text,
        t.group.as_ref(),
        t.gid.as_ref(),
        "group",
        "gid",
        &mut errs,
        crate::users::gid_of,
    );
    let check_cmd = command(&at, t.check_cmd.as_ref(), "check_cmd", &mut errs);
    let reload_cmd = command(&at, t.reload_cmd.as_ref(), "reload_cmd", &mut errs);
    let batch = settings.batch.merged(&crate::config::raw::RawBatch {
        debounce: t.debounce,
        max_wait: t.max_wait,
        reload_limit: t.reload_limit,
        leading: t.leading,
        min_keys: t.min_keys,
        max_shrink: t.max_shrink,
    });

    let prefix = t.prefix.as_ref().map(|p| {
        crate::config::specifier::expand_in_resource(settings, file, &text, p, "prefix", &mut errs)
    });
    if !errs.is_empty() {
        return Err(errs);
    }
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let src = src.expect("checked");
    Ok(Resource {
        name,
        file: file.to_owned(),
        engine: t.engine.unwrap_or_else(|| EngineKind::for_path(&src)),
        src,
        dest: dest.expect("checked"),
        keys: rel_keys,
        prefix: keys::join(&settings.prefix, prefix.as_deref().unwrap_or("")),
        uid,
        gid,
        mode: t.mode.map(|m| m.0),
        check_cmd,
        reload_cmd,
        check_timeout: t.check_timeout.map_or(DEFAULT_COMMAND_TIMEOUT, |d| d.0),
        reload_timeout: t.reload_timeout.map_or(DEFAULT_COMMAND_TIMEOUT, |d| d.0),
        batch,
        rollback: t.rollback.unwrap_or(true),
        lossy_utf8: t.lossy_utf8.unwrap_or(false),
    })
}

/// The file's text and its fields as the dialect reads them, before any is checked.
fn read_raw(
    settings: &Settings,
    file: &Path,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(String, RawFile), Vec<Diagnostic>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| vec![Diagnostic::file(file, format!("cannot read resource: {e}"))])?;
    let raw: RawFile = match settings.dialect {
        Dialect::Reconfd => toml::from_str(&text),
        Dialect::Confd => {
            // confd's fields mean what confd's reader says; reconfd's own keys are read below.
            let confd = crate::confd::resource::parse(file, &text).map_err(|d| vec![d])?;
            parse_leniently(file, &text, &confd, warnings)
        }
    }
    .map_err(|e| vec![Diagnostic::from_toml(file, &text, &e)])?;
    Ok((text, raw))
}

/// Where a resource file's problems point: the file and its text.
struct At<'a> {
    file: &'a Path,
    text: &'a str,
}

impl At<'_> {
    fn at(&self, offset: usize, msg: String) -> Diagnostic {
        Diagnostic::at(self.file, self.text, offset, msg)
    }
}

/// `src`, resolved against `<confdir>/templates` when relative.
fn template_src(
    settings: &Settings,
    at: &At,
    src: Option<&Spanned<String>>,
    table_at: usize,
    errs: &mut Vec<Diagnostic>,
) -> Option<PathBuf> {
    match src {
        Some(s) if !s.get_ref().trim().is_empty() => {
            let p = PathBuf::from(s.get_ref());
            Some(if p.is_absolute() {
                p
            } else {
                settings.confdir.join("templates").join(p)
            })
        }
        Some(s) => {
            errs.push(at.at(s.span().start, "src is empty".into()));
            None
        }
        None => {
            errs.push(at.at(table_at, "[template] has no src".into()));
            None
        }
    }
}

/// `dest`: an absolute path naming a file.
fn template_dest(
    at: &At,
    dest: Option<&Spanned<String>>,
    table_at: usize,
    errs: &mut Vec<Diagnostic>,
) -> Option<PathBuf> {
    match dest {
        Some(d)
            if Path::new(d.get_ref()).is_absolute()
                && Path::new(d.get_ref()).file_name().is_some() =>
        {
            Some(PathBuf::from(d.get_ref()))
        }
        Some(d) => {
            errs.push(at.at(
                d.span().start,
                format!("dest {:?} must be an absolute file path", d.get_ref()),
            ));
            None
        }
        None => {
            errs.push(at.at(table_at, "[template] has no dest".into()));
            None
        }
    }
}

/// `keys`, host specifiers expanded, each with a leading `/`; at least one, none empty or
/// holding `*` or a control character.
fn watched_keys(
    settings: &Settings,
    at: &At,
    keys: &[Spanned<String>],
    table_at: usize,
    errs: &mut Vec<Diagnostic>,
) -> Vec<String> {
    if keys.is_empty() {
        errs.push(at.at(table_at, "[template] has no keys".into()));
    }
    let mut rel_keys = Vec::new();
    for k in keys {
        let key = &crate::config::specifier::expand_in_resource(
            settings, at.file, at.text, k, "key", errs,
        );
        if key.trim().is_empty() || key.chars().any(|c| c.is_control() || c == '*') {
            errs.push(at.at(k.span().start, invalid_key(key)));
        } else {
            rel_keys.push(keys::join("", key));
        }
    }
    rel_keys
}

/// `check_cmd` or `reload_cmd`: absent, or a command that is not blank.
fn command(
    at: &At,
    c: Option<&Spanned<String>>,
    name: &str,
    errs: &mut Vec<Diagnostic>,
) -> Option<String> {
    match c {
        Some(c) if c.get_ref().trim().is_empty() => {
            errs.push(at.at(
                c.span().start,
                format!("{name} is empty; remove it or give a command"),
            ));
            None
        }
        Some(c) => Some(c.get_ref().clone()),
        None => None,
    }
}

/// Parses a resource file as confd does: keys outside `[template]` and keys it does not
/// know are dropped with a warning, and a key matches a field case-insensitively (Go's TOML
/// decoder does that). confd's own fields take the values `confd` (the one confd reader,
/// [`crate::confd::resource::parse`]) gave them: `mode` as confd applies it, `uid`/`gid`
/// `-1` and blank commands unset, an empty key the prefix itself. What remains goes through
/// the same typed checks as reconfd's own.
fn parse_leniently(
    file: &Path,
    text: &str,
    confd: &crate::confd::resource::ConfdResource,
    warnings: &mut Vec<Diagnostic>,
) -> Result<RawFile, toml::de::Error> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text)?;
    let span = doc.span();
    let fields = struct_fields::<RawTemplate>();
    let mut found = Vec::new();
    let mut warn = |at: usize, what: String| found.push(Diagnostic::at(file, text, at, what));
    const IGNORED: &str = "ignored (confd ignores it; `reconfd run` would reject it)";
    let mut root = DeTable::new();
    for (key, mut value) in doc.into_inner() {
        if !key.get_ref().eq_ignore_ascii_case("template") {
            warn(
                key.span().start,
                format!("unknown table or key `{}` {IGNORED}", key.get_ref()),
            );
            continue;
        }
        if let DeValue::Table(table) = value.get_mut() {
            for (k, mut v) in std::mem::take(table) {
                match fields.iter().find(|f| f.eq_ignore_ascii_case(k.get_ref())) {
                    Some(f) => {
                        if as_confd_reads_it(f, &mut v, confd, &mut warn) {
                            table.insert(Spanned::new(k.span(), (*f).into()), v);
                        }
                    }
                    None => warn(
                        k.span().start,
                        format!("unknown key `{}` in [template] {IGNORED}", k.get_ref()),
                    ),
                }
            }
        }
        root.insert(Spanned::new(key.span(), "template".into()), value);
    }
    // The table is ordered by key; report in file order.
    found.sort_by_key(|d| d.line);
    warnings.extend(found);
    RawFile::deserialize(toml::de::Deserializer::from(Spanned::new(span, root)))
}

/// Gives confd's field `field` the value confd's reader found for it; `false` when confd
/// leaves it unset. A `mode` that reconfd's own reading would set differently (the octal
/// set-id and sticky bits, which Go's `os.Chmod` drops; a decimal `644`) is warned about.
fn as_confd_reads_it(
    field: &str,
    value: &mut Spanned<toml::de::DeValue<'_>>,
    confd: &crate::confd::resource::ConfdResource,
    warn: &mut impl FnMut(usize, String),
) -> bool {
    use crate::confd::resource::octal;
    use toml::de::DeValue;
    let at = value.span().start;
    match (field, value.get_mut()) {
        ("mode", DeValue::String(s)) => {
            let Some(applied) = confd.mode else {
                return false;
            };
            if s.parse::<Mode>().ok().map(|m| m.0) != Some(applied) {
                warn(
                    at,
                    format!(
                        "mode {:?} applied as {} (confd reads it with Go's ParseUint, base 0, and os.Chmod drops the octal set-id and sticky bits); write mode = \"{}\" to say so",
                        s.as_ref(),
                        octal(applied),
                        octal(applied)
                    ),
                );
            }
            *s = octal(applied).into();
            true
        }
        ("uid", _) => confd.uid.is_some(),
        ("gid", _) => confd.gid.is_some(),
        ("check_cmd", _) => confd.check_cmd.is_some(),
        ("reload_cmd", _) => confd.reload_cmd.is_some(),
        ("keys", DeValue::Array(items)) => {
            for item in items.iter_mut() {
                if let DeValue::String(k) = item.get_mut() {
                    if k.trim().is_empty() {
                        *k = "/".into();
                    }
                }
            }
            true
        }
        _ => true,
    }
}

/// The field names serde's derive gives `T`: the keys its table may hold. Asked of serde
/// rather than listed here, so a field added to [`RawTemplate`] is known at once.
fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// Resolves `owner`/`uid` (or `group`/`gid`): at most one of the pair, names looked up.
#[allow(clippy::too_many_arguments)]
fn resolve_owner(
    file: &Path,
    text: &str,
    named: Option<&Spanned<NameOrId>>,
    numeric: Option<&Spanned<u32>>,
    name_field: &str,
    id_field: &str,
    errs: &mut Vec<Diagnostic>,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Option<u32> {
    match (named, numeric) {
        (Some(n), Some(_)) => {
            errs.push(Diagnostic::at(
                file,
                text,
                n.span().start,
                format!("both {name_field} and {id_field} are set; use one"),
            ));
            None
        }
        (Some(n), None) => match n.get_ref() {
            NameOrId::Id(id) => Some(*id),
            NameOrId::Name(name) => match lookup(name) {
                Some(id) => Some(id),
                None => {
                    errs.push(Diagnostic::at(
                        file,
                        text,
                        n.span().start,
                        format!(
                            "{name_field} {name:?} does not exist in {}",
                            crate::users::SOURCE
                        ),
                    ));
                    None
                }
            },
        },
        (None, Some(id)) => Some(*id.get_ref()),
        (None, None) => None,
    }
}

/// Why `key` cannot be watched; for a glob, that keys are prefixes (and which one to give) and
/// that the glob belongs in the template.
fn invalid_key(key: &str) -> String {
    match key.find('*') {
        Some(at) => {
            let prefix = match key[..at].rfind('/') {
                Some(0) | None => "/",
                Some(slash) => &key[..slash],
            };
            format!(
                "key {key:?} is not a valid etcd key path: keys are prefixes, each watching every \
                 key under it (e.g. keys = [{prefix:?}]); put globs in the template \
                 (getvs \"{key}\")"
            )
        }
        None => format!("key {key:?} is not a valid etcd key path"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn settings(confdir: &Path, prefix: &str) -> Settings {
        let mut s = Settings::assemble(&Overrides {
            config: None,
            confdir: Some(confdir.to_owned()),
            ..Default::default()
        })
        .unwrap();
        s.prefix = prefix.into();
        s
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        let p = dir.join("conf.d").join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn engine_follows_src_unless_set() {
        let d = tempfile::tempdir().unwrap();
        let s = settings(d.path(), "");
        let one = |name: &str, body: &str| {
            let f = write(d.path(), name, body);
            load_one(&s, &f)
        };
        let r = one(
            "a.toml",
            "[template]\nsrc = \"a.tmpl\"\nkeys = [\"/k\"]\ndest = \"/tmp/a\"\n",
        )
        .unwrap();
        assert_eq!(r.engine, EngineKind::Go);
        let r = one(
            "b.toml",
            "[template]\nsrc = \"b.conf\"\nkeys = [\"/k\"]\ndest = \"/tmp/b\"\n",
        )
        .unwrap();
        assert_eq!(r.engine, EngineKind::Tera);
        let r = one(
            "c.toml",
            "[template]\nsrc = \"c.conf\"\nengine = \"go\"\nkeys = [\"/k\"]\ndest = \"/tmp/c\"\n",
        )
        .unwrap();
        assert_eq!(r.engine, EngineKind::Go);
        let errs = one(
            "e.toml",
            "[template]\nsrc = \"e.conf\"\nengine = \"jinja\"\nkeys = [\"/k\"]\ndest = \"/tmp/e\"\n",
        )
        .unwrap_err();
        let msg = errs[0].to_string();
        assert!(msg.contains("e.toml:3") && msg.contains("jinja"), "{msg}");
    }

    #[test]
    fn full_resource() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "nginx.toml",
            r#"[template]
src = "nginx.tera"
dest = "/etc/nginx/app.conf"
keys = ["/services/apache", "upstream"]
prefix = "/svc"
owner = "root"
group = 0
mode = "0640"
check_cmd = "nginx -t -c {{.src}}"
reload_cmd = "nginx -s reload"
debounce = "0"
reload_limit = "3/10s"
leading = true
check_timeout = "5s"
"#,
        );
        let r = load_one(&settings(d.path(), "/dc1"), &f).unwrap();
        assert_eq!(r.name, "nginx");
        assert_eq!(r.src, d.path().join("templates/nginx.tera"));
        assert_eq!(r.keys, vec!["/services/apache", "/upstream"]);
        assert_eq!(r.prefix, "/dc1/svc");
        assert_eq!(
            r.watched(),
            vec!["/dc1/svc/services/apache", "/dc1/svc/upstream"]
        );
        assert_eq!((r.uid, r.gid, r.mode), (Some(0), Some(0), Some(0o640)));
        assert_eq!(r.batch.debounce, Duration::ZERO);
        assert_eq!(r.batch.max_wait, Duration::from_secs(5));
        assert!(r.batch.leading);
        assert_eq!(r.check_timeout, Duration::from_secs(5));
        assert_eq!(r.reload_timeout, DEFAULT_COMMAND_TIMEOUT);
    }

    /// The guard, rollback and lossy_utf8 fields, over `[batch]`'s guard defaults; a bad
    /// percentage names its line.
    #[test]
    fn guard_rollback_and_lossy_fields() {
        let d = tempfile::tempdir().unwrap();
        let mut s = settings(d.path(), "");
        s.batch.guard.min_keys = 3;
        let base = "[template]\nsrc = \"a.tera\"\ndest = \"/tmp/a.conf\"\nkeys = [\"/a\"]\n";
        let f = write(d.path(), "a.toml", base);
        let r = load_one(&s, &f).unwrap();
        assert_eq!(r.batch.guard.min_keys, 3, "from [batch]");
        assert_eq!(r.batch.guard.max_shrink, crate::guard::DEFAULT.max_shrink);
        assert!(r.rollback && !r.lossy_utf8);
        let f = write(
            d.path(),
            "b.toml",
            &format!(
                "{base}min_keys = 1\nmax_shrink = \"50%\"\nrollback = false\nlossy_utf8 = true\n"
            ),
        );
        let r = load_one(&s, &f).unwrap();
        assert_eq!(
            r.batch.guard,
            crate::guard::Guard {
                min_keys: 1,
                max_shrink: crate::guard::MaxShrink::Limit(crate::guard::Percent::whole(50)),
            }
        );
        assert!(!r.rollback && r.lossy_utf8);
        let f = write(
            d.path(),
            "c.toml",
            &format!("{base}max_shrink = \"half\"\n"),
        );
        let errs = load_one(&s, &f).unwrap_err();
        let msg = errs[0].to_string();
        assert!(
            msg.contains("c.toml:5") && msg.contains("invalid percentage"),
            "{msg}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "bad.toml",
            "[template]\nsrc = \"\"\ndest = \"relative.conf\"\nkeys = [\"/a\"]\nowner = \"no-such-user-xyz\"\n",
        );
        let errs = load_one(&settings(d.path(), ""), &f).unwrap_err();
        let lines: Vec<_> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(2), Some(3), Some(5)], "{errs:?}");
        assert!(errs[2].to_string().contains("no-such-user-xyz"));
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "t.toml",
            "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\"]\nrelaod_cmd = \"x\"\n",
        );
        let errs = load_one(&settings(d.path(), ""), &f).unwrap_err();
        let s = errs[0].to_string();
        assert!(
            s.starts_with(&format!("{}:5: unknown field `relaod_cmd`", f.display())),
            "{s}"
        );
    }

    #[test]
    fn one_broken_file_does_not_hide_others() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "a.toml",
            "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\"]\n",
        );
        write(d.path(), "b.toml", "[template\n");
        write(
            d.path(),
            "c.toml",
            "[template]\nsrc = \"c\"\ndest = \"/c\"\nkeys = [\"/c\"]\n",
        );
        let l = load_all(&settings(d.path(), ""));
        assert_eq!(
            l.resources
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        assert_eq!(l.errors.len(), 1);
        assert_eq!(l.failed.len(), 1);
    }

    #[test]
    fn resources_sharing_a_dest_are_refused_and_the_others_run() {
        let d = tempfile::tempdir().unwrap();
        for (name, dest) in [
            ("a", "/etc/x.conf"),
            ("b", "/etc/y.conf"),
            ("c", "/etc//x.conf"),
        ] {
            write(
                d.path(),
                &format!("{name}.toml"),
                &format!("[template]\nsrc = \"{name}\"\ndest = \"{dest}\"\nkeys = [\"/k\"]\n"),
            );
        }
        let l = load_all(&settings(d.path(), ""));
        let names: Vec<&str> = l.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["b"]);
        assert_eq!(l.failed.len(), 2);
        let text: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].contains("a.toml")
                && text[0].contains("dest /etc/x.conf is also the dest of")
                && text[0].contains("c.toml"),
            "{text:?}"
        );
        assert!(
            text[1].contains("c.toml") && text[1].contains("a.toml"),
            "{text:?}"
        );
    }

    /// `reconfd confd` reads conf.d as confd does; `reconfd run` keeps its strict rules.
    #[test]
    fn confd_dialect_walks_subdirectories_and_warns_about_unknown_keys() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("conf.d/sub/deeper")).unwrap();
        write(
            d.path(),
            "top.toml",
            "[template]\nsrc = \"a.tmpl\"\ndest = \"/a\"\nkeys = [\"/a\"]\n",
        );
        write(
            d.path(),
            "sub/app.toml",
            "# confd's own fields, in confd's spelling\n[template]\nSrc = \"app.tmpl\"\ndest = \"/app\"\nkeys = [\"/app\"]\nmode = \"0640\"\nfrobnicate = true\n\n[other]\nx = 1\n",
        );
        write(
            d.path(),
            "sub/deeper/nodot-toml",
            "[template]\nsrc = \"n\"\ndest = \"/n\"\nkeys = [\"/n\"]\n",
        );
        write(d.path(), "sub/ignored.txt", "not a resource");
        let mut s = settings(d.path(), "");
        s.dialect = Dialect::Confd;
        let l = load_all(&s);
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let names: Vec<&str> = l.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["sub/app", "sub/deeper/nodot-toml", "top"]);
        let app = &l.resources[0];
        assert_eq!(app.src, d.path().join("templates/app.tmpl"));
        assert_eq!(app.mode, Some(0o640));
        let w: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
        let file = d.path().join("conf.d/sub/app.toml");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with(&format!(
                "{}:7: unknown key `frobnicate` in [template] ignored",
                file.display()
            )),
            "{w:?}"
        );
        assert!(
            w[1].starts_with(&format!(
                "{}:9: unknown table or key `other`",
                file.display()
            )),
            "{w:?}"
        );
        // Values are still checked, with their line.
        write(
            d.path(),
            "sub/bad.toml",
            "[template]\nsrc = \"b\"\ndest = \"/b\"\nkeys = [\"/b\"]\nunknown = 1\nmode = \"rw\"\n",
        );
        let l = load_all(&s);
        assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
        assert_eq!(l.errors[0].line, Some(6), "{}", l.errors[0]);

        // reconfd's dialect: conf.d/*.toml only, unknown keys are errors.
        s.dialect = Dialect::Reconfd;
        let l = load_all(&s);
        assert_eq!(l.resources.len(), 1, "{:?}", l.resources);
        assert!(l.errors.is_empty() && l.warnings.is_empty());
        write(
            d.path(),
            "strict.toml",
            "[template]\nsrc = \"s\"\ndest = \"/s\"\nkeys = [\"/s\"]\nfrobnicate = 1\n",
        );
        let l = load_all(&s);
        assert!(
            l.errors[0].message.contains("unknown field `frobnicate`"),
            "{:?}",
            l.errors
        );
    }

    /// `reconfd confd` and `reconfd migrate` read confd's fields with one reader: each case
    /// means the same to both (mode, uid, gid, keys, commands), or fails both.
    #[test]
    fn confd_fields_mean_one_thing_to_confd_and_migrate() {
        let setuid = format!("{}", (1u64 << 23) | 0o755);
        #[allow(clippy::type_complexity)]
        let cases: Vec<(String, Option<(Option<u32>, Option<u32>, Option<u32>)>)> = vec![
            ("mode = \"0644\"".into(), Some((Some(0o644), None, None))),
            ("mode = \"420\"".into(), Some((Some(0o644), None, None))),
            ("mode = \"0x1a4\"".into(), Some((Some(0o644), None, None))),
            ("mode = \"0o644\"".into(), Some((Some(0o644), None, None))),
            // Octal set-id bits are not Go's ModeSetuid: os.Chmod drops them.
            ("mode = \"04755\"".into(), Some((Some(0o755), None, None))),
            ("mode = \"644\"".into(), Some((Some(0o204), None, None))),
            (
                format!("mode = \"{setuid}\""),
                Some((Some(0o4755), None, None)),
            ),
            ("uid = -1\ngid = -1".into(), Some((None, None, None))),
            ("uid = 0\ngid = -1".into(), Some((None, Some(0), None))),
            ("uid = -2".into(), None),
            ("mode = \"rw\"".into(), None),
            ("mode = 644".into(), None),
        ];
        let d = tempfile::tempdir().unwrap();
        let mut s = settings(d.path(), "");
        s.dialect = Dialect::Confd;
        for (extra, want) in cases {
            let text = format!(
                "[template]\nsrc = \"a.tmpl\"\ndest = \"/a\"\nkeys = [\"/a\", \"\"]\ncheck_cmd = \" \"\n{extra}\n"
            );
            let f = write(d.path(), "c.toml", &text);
            let migrate = crate::confd::resource::parse(&f, &text);
            let mut warnings = Vec::new();
            let confd = load_file(&s, &f, &mut warnings);
            match want {
                Some((mode, uid, gid)) => {
                    let m = migrate.unwrap();
                    let c = confd.unwrap_or_else(|e| panic!("{extra}: {e:?}"));
                    assert_eq!((m.mode, m.uid, m.gid), (mode, uid, gid), "{extra}");
                    assert_eq!((c.mode, c.uid, c.gid), (mode, uid, gid), "{extra}");
                    assert_eq!(m.keys, vec!["/a", "/"], "{extra}");
                    assert_eq!(c.keys, vec!["/a", "/"], "{extra}");
                    assert_eq!((m.check_cmd, c.check_cmd), (None, None), "{extra}");
                }
                None => {
                    let m = migrate.unwrap_err();
                    let c = confd.unwrap_err();
                    assert_eq!(c, vec![m], "{extra}");
                }
            }
        }
        // Where confd's reading differs from reconfd's own, the confd dialect says so, with
        // the file and line.
        let text = "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\"]\nmode = \"04755\"\n";
        let f = write(d.path(), "c.toml", text);
        let mut warnings = Vec::new();
        load_file(&s, &f, &mut warnings).unwrap();
        let w = warnings[0].to_string();
        assert!(
            w.starts_with(&format!(
                "{}:5: mode \"04755\" applied as 0755",
                f.display()
            )),
            "{w}"
        );
        // reconfd's own dialect keeps its reading.
        s.dialect = Dialect::Reconfd;
        assert_eq!(load_one(&s, &f).unwrap().mode, Some(0o4755));
    }

    #[test]
    fn struct_fields_lists_every_template_key() {
        let fields = struct_fields::<RawTemplate>();
        for f in [
            "src",
            "dest",
            "keys",
            "prefix",
            "mode",
            "check_cmd",
            "reload_cmd",
            "debounce",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    // Specifiers (%H, ...) in a resource's keys and prefix: config::specifier expands them
    // at load time.
    #[test]
    fn resource_keys_and_prefix_expand_and_errors_name_their_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        let file = d.path().join("conf.d/r.toml");
        let mut s = Settings::assemble(&Overrides {
            config: Some("/dev/null".into()),
            confdir: Some(d.path().to_owned()),
            ..Default::default()
        })
        .unwrap();
        std::fs::write(
            &file,
            "[template]\nsrc = \"a\"\ndest = \"/a\"\nprefix = \"/p%%\"\nkeys = [\"/a%%b\"]\n",
        )
        .unwrap();
        let r = load_one(&s, &file).unwrap();
        assert_eq!(r.watched(), vec!["/p%/a%b"]);
        std::fs::write(
            &file,
            "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\n  \"/ok\",\n  \"/b/%Q\",\n]\nprefix = \"/p/%\"\n",
        )
        .unwrap();
        let errs = load_one(&s, &file).unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        let at = |line: usize| format!("{}:{line}: ", file.display());
        assert!(
            text[0].starts_with(&(at(6) + "key: unknown specifier \"%Q\"")),
            "{text:?}"
        );
        assert!(text[1].starts_with(&(at(8) + "prefix: ")), "{text:?}");
        // confd's dialect reads the same file as confd would: `%` is just a character.
        s.dialect = Dialect::Confd;
        let r = load_one(&s, &file).unwrap();
        assert_eq!(r.watched(), vec!["/p/%/ok", "/p/%/b/%Q"]);
    }

    /// A confd key with a `%` keeps meaning the same key once `reconfd migrate` wrote it.
    #[test]
    fn migrated_resources_keep_a_literal_percent() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        let confd = crate::confd::resource::parse(
            Path::new("/c/conf.d/x.toml"),
            "[template]\nsrc = \"a.tmpl\"\ndest = \"/a\"\nprefix = \"/p%H\"\nkeys = [\"/50%\"]\n",
        )
        .unwrap();
        let text = crate::confd::resource::render(&confd, "a.tera", false, Path::new("/c"), &[]);
        let file = d.path().join("conf.d/x.toml");
        std::fs::write(&file, text).unwrap();
        let s = Settings::assemble(&Overrides {
            config: Some("/dev/null".into()),
            confdir: Some(d.path().to_owned()),
            ..Default::default()
        })
        .unwrap();
        let r = load_one(&s, &file).unwrap();
        assert_eq!(r.watched(), vec!["/p%H/50%"]);
    }
}
