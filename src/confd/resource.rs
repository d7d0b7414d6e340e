//! confd template resources (`conf.d/**/*toml`) read with confd's rules, and written back in
//! reconfd's form. This is the one confd resource reader: `reconfd migrate` takes its result
//! as it is, and `reconfd confd` (the confd dialect of [`crate::resource`]) gives confd's
//! fields the values it found before reconfd's own checks run, so a confd tree means the
//! same under both.
//!
//! confd decodes the file with BurntSushi/toml into its `TemplateResource` struct: the
//! `[template]` table's keys match the fields case-insensitively, unknown keys are ignored,
//! and a value of the wrong type fails the whole resource. `mode` is parsed by Go's
//! `strconv.ParseUint(mode, 0, 32)` and applied through `os.Chmod`, which keeps only the
//! permission bits and Go's own setuid/setgid/sticky flags. This module reproduces exactly
//! that, so the reconfd resource means what the confd one meant, and says where it had to
//! change something.

use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::Diagnostic;

/// A confd resource, as confd understands it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfdResource {
    /// `src`, relative to confd's templates directory (confd joins it there even when it
    /// starts with `/`).
    pub src: String,
    /// `dest`.
    pub dest: String,
    /// `keys`, as written (empty keys already turned into `/`).
    pub keys: Vec<String>,
    /// `prefix`, as written.
    pub prefix: Option<String>,
    /// The mode confd applies, when `mode` is set.
    pub mode: Option<u32>,
    /// `uid`, unless unset or -1 (confd's "not set").
    pub uid: Option<u32>,
    /// `gid`, likewise.
    pub gid: Option<u32>,
    /// `check_cmd`, unless empty (confd skips an empty command).
    pub check_cmd: Option<String>,
    /// `reload_cmd`, unless empty.
    pub reload_cmd: Option<String>,
    /// What the migration changed or dropped, and why; one line each.
    pub notes: Vec<String>,
    /// The comment lines at the top of the file, kept for the reconfd resource.
    pub header_comments: Vec<String>,
}

/// The `[template]` fields of confd's `TemplateResource` that a TOML key can set.
const FIELDS: &[&str] = &[
    "src",
    "dest",
    "keys",
    "prefix",
    "mode",
    "uid",
    "gid",
    "check_cmd",
    "reload_cmd",
];

/// Reads a confd resource file's text the way confd does; errors name `file` and the line.
pub fn parse(file: &Path, text: &str) -> Result<ConfdResource, Diagnostic> {
    let rd = Reader { file, text };
    let doc = DeTable::parse(text).map_err(|e| match e.span() {
        Some(span) => rd.at(span.start, e.message().trim().to_owned()),
        None => Diagnostic::file(file, e.message().trim().to_owned()),
    })?;
    let mut r = ConfdResource {
        header_comments: text
            .lines()
            .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        ..Default::default()
    };
    let table = rd.template_table(doc.get_ref(), &mut r.notes)?;
    let src = rd.fields(table, &mut r)?;
    rd.finish(r, src)
}

/// The file being read, for errors that name it and the line.
struct Reader<'a> {
    file: &'a Path,
    text: &'a str,
}

/// `src` as found, with where its value starts.
type Src = Option<(String, usize)>;

impl Reader<'_> {
    fn at(&self, offset: usize, msg: String) -> Diagnostic {
        Diagnostic::at(self.file, self.text, offset, msg)
    }

    fn line(&self, offset: usize) -> usize {
        crate::diag::line_of(self.text, offset)
    }

    /// The one `[template]` table (any case); other top-level keys are noted and dropped.
    fn template_table<'d>(
        &self,
        doc: &'d DeTable<'d>,
        notes: &mut Vec<String>,
    ) -> Result<&'d DeTable<'d>, Diagnostic> {
        let mut table = None;
        for (k, v) in doc {
            if !k.get_ref().eq_ignore_ascii_case("template") {
                notes.push(format!(
                    "dropped top-level `{}` (line {}), which confd ignores",
                    k.get_ref(),
                    self.line(k.span().start)
                ));
                continue;
            }
            if table.is_some() {
                return Err(self.at(
                    k.span().start,
                    "more than one [template] table (spelled with different case); confd \
                     would pick one at random"
                        .into(),
                ));
            }
            match v.get_ref() {
                DeValue::Table(t) => table = Some(t),
                _ => {
                    return Err(self.at(
                        v.span().start,
                        "`template` must be a table ([template])".into(),
                    ))
                }
            }
        }
        table.ok_or_else(|| {
            Diagnostic::file(
                self.file,
                "no [template] table (confd fails on it: empty src template)",
            )
        })
    }

    /// Every key of `[template]` into `r`; returns `src`. BurntSushi/toml matches keys to
    /// fields ignoring case; two spellings of one field are decoded in Go's random map order,
    /// so they are an error here.
    fn fields(&self, table: &DeTable<'_>, r: &mut ConfdResource) -> Result<Src, Diagnostic> {
        let mut seen: Vec<(&str, usize)> = Vec::new();
        let mut src = None;
        for (k, v) in table {
            let key = k.get_ref().as_ref();
            let Some(field) = FIELDS.iter().find(|f| f.eq_ignore_ascii_case(key)) else {
                let hint = match key.to_ascii_lowercase().as_str() {
                    "owner" | "group" => " (reconfd supports it: add it back if you meant it)",
                    _ => "",
                };
                r.notes.push(format!(
                    "dropped `{key}` (line {}), which confd ignores{hint}",
                    self.line(k.span().start)
                ));
                continue;
            };
            if let Some((_, other)) = seen.iter().find(|(f, _)| f == field) {
                // Report the later of the two, naming the earlier.
                let (later, earlier) = if *other < k.span().start {
                    (k.span().start, *other)
                } else {
                    (*other, k.span().start)
                };
                return Err(self.at(
                    later,
                    format!(
                        "{field} is set twice (also on line {}); confd would pick one at random",
                        self.line(earlier)
                    ),
                ));
            }
            seen.push((field, k.span().start));
            match *field {
                "uid" | "gid" => self.id_field(field, key, v, r)?,
                "keys" => self.keys_field(key, v, r)?,
                _ => {
                    let DeValue::String(s) = v.get_ref() else {
                        return Err(self.wrong(key, v, "a string"));
                    };
                    if *field == "src" {
                        src = Some((s.to_string(), v.span().start));
                    } else {
                        self.string_field(field, s.to_string(), v.span().start, r)?;
                    }
                }
            }
        }
        Ok(src)
    }

    fn wrong(&self, key: &str, v: &Spanned<DeValue<'_>>, want: &str) -> Diagnostic {
        self.at(
            v.span().start,
            format!("`{key}` must be {want} (confd fails this resource)"),
        )
    }

    /// `dest`, `prefix`, `mode`, `check_cmd` or `reload_cmd`, whose value `s` starts at `offset`.
    fn string_field(
        &self,
        field: &str,
        s: String,
        offset: usize,
        r: &mut ConfdResource,
    ) -> Result<(), Diagnostic> {
        match field {
            "dest" => r.dest = s,
            "prefix" => r.prefix = Some(s),
            "mode" => {
                let applied = mode(&s).map_err(|m| self.at(offset, m))?;
                r.mode = Some(applied);
                r.notes.extend(mode_note(&s, applied));
            }
            // confd skips an empty command and runs a blank one as a no-op; reconfd rejects
            // both, so both are left out.
            _ => {
                let cmd = if s.trim().is_empty() {
                    if !s.is_empty() {
                        r.notes.push(format!(
                            "{field} {s:?} is blank (a no-op for confd): left out"
                        ));
                    }
                    None
                } else {
                    Some(s)
                };
                if field == "check_cmd" {
                    r.check_cmd = cmd;
                } else {
                    r.reload_cmd = cmd;
                }
            }
        }
        Ok(())
    }

    /// `uid` or `gid`: an integer, -1 meaning unset as in confd.
    fn id_field(
        &self,
        field: &str,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        r: &mut ConfdResource,
    ) -> Result<(), Diagnostic> {
        let DeValue::Integer(i) = v.get_ref() else {
            return Err(self.wrong(key, v, "an integer"));
        };
        let n = i64::from_str_radix(i.as_str(), i.radix())
            .map_err(|_| self.wrong(key, v, "an integer that fits Go's int"))?;
        let id = match n {
            -1 => None,
            n => Some(u32::try_from(n).map_err(|_| {
                self.at(
                    v.span().start,
                    format!(
                        "`{key}` = {n} is not a valid id (confd's chown fails silently; \
                         reconfd needs 0 to 4294967295 or no {field})"
                    ),
                )
            })?),
        };
        if field == "uid" {
            r.uid = id;
        } else {
            r.gid = id;
        }
        Ok(())
    }

    /// `keys`: an array of strings, each checked by [`key_of`].
    fn keys_field(
        &self,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        r: &mut ConfdResource,
    ) -> Result<(), Diagnostic> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong(key, v, "an array of strings"));
        };
        for item in items {
            let DeValue::String(s) = item.get_ref() else {
                return Err(self.at(
                    item.span().start,
                    "`keys` must hold only strings (confd fails this resource)".into(),
                ));
            };
            r.keys
                .push(key_of(s, item, self.text, self.file, &mut r.notes)?);
        }
        Ok(())
    }

    /// What confd requires of the whole resource (`src`, an absolute `dest`, keys), and the
    /// notes on what means something else under reconfd.
    fn finish(&self, mut r: ConfdResource, src: Src) -> Result<ConfdResource, Diagnostic> {
        match src {
            Some((s, _)) if !s.is_empty() => r.src = s,
            Some((_, offset)) => {
                return Err(self.at(offset, "src is empty (confd: empty src template)".into()))
            }
            None => {
                return Err(self.at(
                    0,
                    "[template] has no src (confd: empty src template)".into(),
                ))
            }
        }
        if r.dest.is_empty() || !Path::new(&r.dest).is_absolute() {
            return Err(Diagnostic::file(
                self.file,
                format!(
                    "dest {:?} is not an absolute path (confd would resolve it against its \
                     working directory); reconfd needs an absolute dest",
                    r.dest
                ),
            ));
        }
        if r.keys.is_empty() {
            return Err(Diagnostic::file(
                self.file,
                "no keys: reconfd needs at least one key to watch (use keys = [\"/\"] for \
                 everything under the prefix)",
            ));
        }
        if let Some(note) = r.check_cmd.as_deref().and_then(check_cmd_note) {
            r.notes.push(note);
        }
        if r.reload_cmd.as_deref().is_some_and(|c| c.contains("{{")) {
            r.notes.push(
                "reload_cmd contains `{{`: confd runs reload_cmd as written, reconfd replaces \
                 {{.src}} and {{.dest}} in it"
                    .into(),
            );
        }
        if r.prefix
            .as_deref()
            .is_some_and(|p| !p.trim_matches('/').is_empty())
        {
            r.notes.push(
                "prefix: confd's -prefix flag replaced it, reconfd's global prefix is joined \
                 before it"
                    .into(),
            );
        }
        Ok(r)
    }
}

/// What to tell about `mode = s` when confd applies `applied` of it.
fn mode_note(s: &str, applied: u32) -> Option<String> {
    let parsed = go_parse_uint(s).unwrap_or_default();
    let written = octal(applied);
    if parsed != u64::from(applied) {
        Some(format!(
            "mode {s:?} is {parsed:#o} to Go's ParseUint (base 0: a leading 0 is octal, 0x \
             hex, else decimal); confd applies only {written} of it (os.Chmod keeps the \
             permission bits), so it is written as \"{written}\": check that this is what \
             you want"
        ))
    } else if s != written {
        Some(format!(
            "mode {s:?} (Go's ParseUint, base 0) is written as \"{written}\""
        ))
    } else {
        None
    }
}

/// One entry of `keys`, checked against what reconfd accepts.
fn key_of(
    s: &str,
    item: &Spanned<DeValue<'_>>,
    text: &str,
    file: &Path,
    notes: &mut Vec<String>,
) -> Result<String, Diagnostic> {
    if s.trim().is_empty() {
        // confd joins "" with the prefix: the prefix itself.
        notes.push(format!(
            "key {s:?} (line {}) is written as \"/\" (the whole prefix, as confd reads it)",
            crate::diag::line_of(text, item.span().start)
        ));
        return Ok("/".into());
    }
    if s.chars().any(|c| c.is_control() || c == '*') {
        return Err(Diagnostic::at(
            file,
            text,
            item.span().start,
            format!(
                "key {s:?}: reconfd does not accept `*` or control characters in keys (confd \
                 reads such a key as a literal prefix)"
            ),
        ));
    }
    Ok(s.to_owned())
}

/// What differs when reconfd runs this check_cmd: confd executes it as a Go template with
/// `.src` set; reconfd replaces only `{{.src}}` and `{{.dest}}`.
fn check_cmd_note(cmd: &str) -> Option<String> {
    let mut rest = cmd;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            return Some(
                "check_cmd has an unclosed `{{`: confd fails the check, reconfd runs it as \
                 written"
                    .into(),
            );
        };
        let inner = rest[start + 2..start + len].trim_matches([' ', '\t']);
        match inner {
            ".src" => {}
            ".dest" => {
                return Some(
                    "check_cmd uses {{.dest}}: confd gives it no value (prints <no value>), \
                     reconfd the destination path"
                        .into(),
                )
            }
            other => {
                return Some(format!(
                    "check_cmd uses {{{{{other}}}}}: confd evaluates it as a Go template, \
                     reconfd replaces only {{{{.src}}}} and {{{{.dest}}}}"
                ))
            }
        }
        rest = &rest[start + len + 2..];
    }
    None
}

/// The mode confd applies for `mode = s`: Go's `strconv.ParseUint(s, 0, 32)`, then
/// `os.Chmod`, which keeps the permission bits and maps Go's `ModeSetuid`, `ModeSetgid` and
/// `ModeSticky` (not the octal 04000, 02000, 01000) to the set-id and sticky bits.
pub fn mode(s: &str) -> Result<u32, String> {
    let v = go_parse_uint(s).ok_or_else(|| {
        format!("mode {s:?} is not a number Go's ParseUint accepts (confd fails this resource)")
    })?;
    if v > u64::from(u32::MAX) {
        return Err(format!(
            "mode {s:?} is out of range for 32 bits (confd fails this resource)"
        ));
    }
    const MODE_SETUID: u64 = 1 << 23;
    const MODE_SETGID: u64 = 1 << 22;
    const MODE_STICKY: u64 = 1 << 20;
    let mut m = (v & 0o777) as u32;
    if v & MODE_SETUID != 0 {
        m |= 0o4000;
    }
    if v & MODE_SETGID != 0 {
        m |= 0o2000;
    }
    if v & MODE_STICKY != 0 {
        m |= 0o1000;
    }
    Ok(m)
}

/// A mode in reconfd's octal form: `0644`, `04755`.
pub fn octal(mode: u32) -> String {
    format!("0{mode:03o}")
}

/// Go's `strconv.ParseUint(s, 0, 64)`: `0x`/`0o`/`0b` prefixes (any case), a leading `0`
/// for octal, `_` between digits; no sign, no spaces.
pub fn go_parse_uint(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (base, digits) = match (b.first(), b.get(1).map(u8::to_ascii_lowercase)) {
        (Some(b'0'), Some(p @ (b'x' | b'o' | b'b'))) if b.len() >= 3 => {
            let base = match p {
                b'x' => 16,
                b'o' => 8,
                _ => 2,
            };
            (base, &b[2..])
        }
        (Some(b'0'), _) => (8, &b[1..]),
        _ => (10, b),
    };
    let mut v: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        let d = match c {
            b'_' => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => c - b'0',
            c if c.is_ascii_alphabetic() => c.to_ascii_lowercase() - b'a' + 10,
            _ => return None,
        };
        if u32::from(d) >= base {
            return None;
        }
        v = v.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    if underscores && !underscore_ok(s) {
        return None;
    }
    Some(v)
}

/// Go's `underscoreOK`: underscores only between digits (a base prefix counts as a digit).
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// The reconfd resource for `r`, with `src` the template under `<to>/templates`.
/// `go` adds `engine = "go"` (for a kept Go template whose name does not end in `.tmpl`).
pub fn render(r: &ConfdResource, src: &str, go: bool, origin: &Path, header: &[String]) -> String {
    let s = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let mut out = String::new();
    out.push_str(&format!(
        "# Migrated by `reconfd migrate` from the confd resource {}.\n",
        origin.display()
    ));
    for line in header {
        out.push_str(&format!("# {line}\n"));
    }
    for n in &r.notes {
        out.push_str(&format!("# note: {n}\n"));
    }
    for c in &r.header_comments {
        out.push_str(c);
        out.push('\n');
    }
    out.push_str("[template]\n");
    out.push_str(&format!("src = {}\n", s(src)));
    if go {
        out.push_str("engine = \"go\"\n");
    }
    out.push_str(&format!("dest = {}\n", s(&r.dest)));
    // reconfd reads `%` in keys and prefixes as a specifier (%H, ...); confd's is literal.
    let literal = |v: &str| s(&v.replace('%', "%%"));
    let keys: Vec<String> = r.keys.iter().map(|k| literal(k)).collect();
    out.push_str(&format!("keys = [{}]\n", keys.join(", ")));
    if let Some(p) = &r.prefix {
        out.push_str(&format!("prefix = {}\n", literal(p)));
    }
    if let Some(uid) = r.uid {
        out.push_str(&format!("uid = {uid}\n"));
    }
    if let Some(gid) = r.gid {
        out.push_str(&format!("gid = {gid}\n"));
    }
    if let Some(m) = r.mode {
        out.push_str(&format!("mode = \"{}\"\n", octal(m)));
    }
    if let Some(c) = &r.check_cmd {
        out.push_str(&format!("check_cmd = {}\n", s(c)));
    }
    if let Some(c) = &r.reload_cmd {
        out.push_str(&format!("reload_cmd = {}\n", s(c)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<ConfdResource, String> {
        parse(Path::new("/c/conf.d/x.toml"), text).map_err(|d| d.to_string())
    }

    #[test]
    fn go_parse_uint_base_0() {
        for (s, v) in [
            ("0644", 0o644),
            ("420", 420),
            ("0x1a4", 0x1a4),
            ("0X1A4", 0x1a4),
            ("0o644", 0o644),
            ("0b110100100", 0o644),
            ("0", 0),
            ("0_644", 0o644),
            ("0x_1a4", 0x1a4),
            ("4_20", 420),
        ] {
            assert_eq!(go_parse_uint(s), Some(v), "{s}");
        }
        for s in [
            "", " 0644", "0644 ", "+420", "-1", "0x", "0o", "0b", "0999", "rw", "0__644", "644_",
            "_644", "0x_", "1e3",
        ] {
            assert_eq!(go_parse_uint(s), None, "{s:?}");
        }
    }

    #[test]
    fn mode_is_what_chmod_applies() {
        assert_eq!(mode("0644"), Ok(0o644));
        assert_eq!(mode("420"), Ok(0o644));
        assert_eq!(mode("0x1a4"), Ok(0o644));
        // Octal set-id bits are not Go's ModeSetuid: os.Chmod drops them.
        assert_eq!(mode("04755"), Ok(0o755));
        assert_eq!(
            (octal(0o644), octal(0o4755), octal(0)),
            ("0644".into(), "04755".into(), "0000".into())
        );
        // Go's ModeSetuid | 0755.
        assert_eq!(mode(&((1u64 << 23) | 0o755).to_string()), Ok(0o4755));
        assert!(mode("4294967296").is_err());
        assert!(mode("0999").is_err());
    }

    #[test]
    fn fields_match_case_insensitively_and_unknown_keys_are_dropped() {
        let r = parse_str(
            "# nginx for the web tier\n\n[Template]\nSRC = \"nginx.tmpl\"\nDest = \"/etc/nginx/nginx.conf\"\nKEYS = [\"/services/web\", \"\"]\nmode = \"420\"\nuid = 0\ngid = -1\nowner = \"nginx\"\nrelaod_cmd = \"x\"\ncheck_cmd = \"nginx -t -c {{.src}}\"\nreload_cmd = \"\"\n[other]\na = 1\n",
        )
        .unwrap();
        assert_eq!(r.src, "nginx.tmpl");
        assert_eq!(r.dest, "/etc/nginx/nginx.conf");
        assert_eq!(r.keys, vec!["/services/web", "/"]);
        assert_eq!((r.mode, r.uid, r.gid), (Some(0o644), Some(0), None));
        assert_eq!(r.check_cmd.as_deref(), Some("nginx -t -c {{.src}}"));
        assert_eq!(r.reload_cmd, None);
        assert_eq!(r.header_comments, vec!["# nginx for the web tier"]);
        let notes = r.notes.join("\n");
        for want in [
            "dropped top-level `other`",
            "dropped `owner` (line 10), which confd ignores (reconfd supports it",
            "dropped `relaod_cmd` (line 11)",
            "mode \"420\" (Go's ParseUint, base 0) is written as \"0644\"",
            "key \"\" (line 6) is written as \"/\"",
        ] {
            assert!(notes.contains(want), "{want:?} not in:\n{notes}");
        }
        let out = render(&r, "nginx.tera", false, Path::new("/c/conf.d/x.toml"), &[]);
        assert!(out.contains("mode = \"0644\"\n"), "{out}");
        assert!(out.contains("keys = [\"/services/web\", \"/\"]\n"), "{out}");
        assert!(out.contains("uid = 0\n") && !out.contains("gid"), "{out}");
    }

    #[test]
    fn surprising_modes_and_blank_commands_are_explained() {
        let r = parse_str(
            "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\"]\nmode = \"644\"\ncheck_cmd = \" \"\nreload_cmd = \"\"\n",
        )
        .unwrap();
        assert_eq!(
            (r.mode, r.check_cmd, r.reload_cmd),
            (Some(0o204), None, None)
        );
        let notes = r.notes.join("\n");
        assert!(
            notes.contains("mode \"644\" is 0o1204 to Go's ParseUint")
                && notes.contains("written as \"0204\""),
            "{notes}"
        );
        assert!(notes.contains("check_cmd \" \" is blank"), "{notes}");
        let setuid = (1u64 << 23) | 0o755;
        let r = parse_str(&format!(
            "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\"]\nmode = \"{setuid}\"\n"
        ))
        .unwrap();
        let out = render(&r, "a", false, Path::new("/c/x.toml"), &[]);
        assert!(out.contains("mode = \"04755\"\n"), "{out}");
        // reconfd reads it back as the same mode.
        assert_eq!("04755".parse::<crate::config::Mode>().unwrap().0, 0o4755);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\"]\nmode = 644\n",
                ":5:",
                "must be a string",
            ),
            (
                "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\"]\nmode = \"rw\"\n",
                ":5:",
                "ParseUint",
            ),
            (
                "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\", 3]\n",
                ":4:",
                "only strings",
            ),
            (
                "[template]\nsrc = \"a\"\nSrc = \"b\"\ndest = \"/a\"\nkeys = [\"/a\"]\n",
                ":3:",
                "set twice (also on line 2)",
            ),
            (
                "[template]\nsrc = \"\"\ndest = \"/a\"\nkeys = [\"/a\"]\n",
                ":2:",
                "src is empty",
            ),
            (
                "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a/*\"]\n",
                ":4:",
                "`*`",
            ),
            (
                "[template]\nsrc = \"a\"\ndest = \"/a\"\nkeys = [\"/a\"]\nuid = -2\n",
                ":5:",
                "not a valid id",
            ),
            ("[template\nsrc = \"a\"\n", ":1:", ""),
        ];
        for (text, line, msg) in cases {
            let e = parse_str(text).unwrap_err();
            assert!(e.contains(line) && e.contains(msg), "{text:?}: {e}");
        }
        assert!(
            parse_str("[template]\nsrc = \"a\"\ndest = \"rel\"\nkeys = [\"/a\"]\n")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(parse_str("[template]\nsrc = \"a\"\ndest = \"/a\"\n")
            .unwrap_err()
            .contains("no keys"));
    }

    #[test]
    fn command_notes() {
        assert_eq!(check_cmd_note("nginx -t -c {{.src}} && x {{ .src }}"), None);
        assert!(check_cmd_note("cmp {{.src}} {{.dest}}")
            .unwrap()
            .contains("<no value>"));
        assert!(check_cmd_note("x {{- .src}}")
            .unwrap()
            .contains("{{- .src}}"));
    }
}
