//! Differential test of reconfd's Go-template engine against Go itself: a seeded generator
//! writes a few hundred templates from text/template's grammar and confd's function map
//! (literals of every kind, pipelines, variables, if/range/with/else, break/continue,
//! define/template/block, comments and trim markers, printf with random verbs and flags,
//! deliberate mistakes), the Go oracle (tests/gotemplate/oracle, Go 1.19's text/template
//! with confd's functions) renders them all in one batch process, and reconfd renders each
//! in process. Outputs must be byte-identical; where Go fails, reconfd must fail the same
//! way (parse or execution) with Go's message. Every template that `reconfd migrate`
//! translates to Tera must also render, as Tera, Go's bytes (or fail where Go fails).
//!
//! `RECONFD_DIFF_SEED` and `RECONFD_DIFF_COUNT` change the run (default: a fixed seed, 400
//! templates), so a failure is reproduced exactly. Needs Go 1.19 (`/usr/lib/go-1.19/bin/go`
//! or `$GO`); under CI=true its absence fails the test.

mod util;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use reconfd::migrate::translate::{translate, Outcome};
use reconfd::store::KvView;
use reconfd::template::{EngineKind, Template, TemplateError};

/// The name both engines give the template (it shows in error messages).
const NAME: &str = "t.tmpl";

/// The keys every generated template sees.
fn data() -> BTreeMap<String, String> {
    [
        ("/app/name", "web"),
        ("/app/port", "8080"),
        ("/svc/a", "10.0.0.1:80"),
        ("/svc/bb", "10.0.0.22:8080"),
        ("/svc/c", "x"),
        ("/svc/deep/d", "4"),
        (
            "/cfg",
            r#"{"n":1.5,"i":3,"list":[1,"a",null,true,2.5e-7],"m":{"k":"v","z":[]},"big":1e21}"#,
        ),
        ("/num", "42"),
        ("/b64", "aGVsbG8="),
        ("/empty", ""),
        ("/csv", "a,bb,,ccc"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

// ---- a small deterministic generator ----

/// splitmix64: fixed output for a seed on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// What an expression is meant to produce (it may still fail: the engines must agree).
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    List,
    Map,
    Any,
}

struct Gen {
    rng: Rng,
    /// Variables in scope, innermost scope last.
    scopes: Vec<Vec<String>>,
    /// Templates defined so far (names).
    defined: Vec<String>,
    depth: usize,
    loop_depth: usize,
}

const STRINGS: &[&str] = &[
    r#""""#,
    r#""a""#,
    r#""héllo""#,
    r#""a,b,c""#,
    r#""10.0.0.1:80""#,
    r#""/svc/a""#,
    r#""%d""#,
    r#""AbC""#,
    r#"" x ""#,
    r#""<&'\">""#,
    r#""tab\there""#,
    "`raw\\n`",
    r#""/svc/*""#,
    r#""日本""#,
];
const INTS: &[&str] = &[
    "0", "1", "-3", "42", "0x1f", "'a'", "1_000", "017", "0b11", "7", "2", "-1", "255",
];
const FLOATS: &[&str] = &[
    "1.5",
    "1e21",
    "0.0001",
    "1e6",
    "2.5e-7",
    "-0.5",
    "100.25",
    "1e20",
    "0x1p-2",
    "123456789.5",
];
const KEYS: &[&str] = &[
    r#""/app/name""#,
    r#""/app/port""#,
    r#""/svc/a""#,
    r#""/num""#,
    r#""/empty""#,
    r#""/csv""#,
    r#""/b64""#,
    r#""/missing""#,
];
const PATTERNS: &[&str] = &[
    r#""/svc/*""#,
    r#""/app/*""#,
    r#""/*""#,
    r#""/none/*""#,
    r#""/svc/[ab]*""#,
];
const DIRS: &[&str] = &[
    r#""/""#,
    r#""/svc""#,
    r#""/svc/""#,
    r#""/app""#,
    r#""/nothing""#,
];
const TEXT: &[&str] = &[
    "", " ", "\n", "a", " - ", "x\n", "\t", "  \n  ", ";", "server ",
];

impl Gen {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            scopes: vec![Vec::new()],
            defined: Vec::new(),
            depth: 0,
            loop_depth: 0,
        }
    }

    fn var(&mut self) -> Option<String> {
        let all: Vec<&String> = self.scopes.iter().flatten().collect();
        if all.is_empty() {
            None
        } else {
            Some(all[self.rng.below(all.len())].clone())
        }
    }

    /// An operand: a literal, a variable, `.`, or a parenthesised call.
    fn operand(&mut self, kind: Kind) -> String {
        if self.depth > 3 || self.rng.chance(45) {
            return self.literal(kind);
        }
        if self.rng.chance(15) {
            if let Some(v) = self.var() {
                return v;
            }
        }
        if self.rng.chance(5) {
            return ".".to_owned();
        }
        format!("({})", self.call(kind))
    }

    fn literal(&mut self, kind: Kind) -> String {
        let r = &mut self.rng;
        match kind {
            Kind::Str => r.pick(STRINGS).to_owned(),
            Kind::Int => r.pick(INTS).to_owned(),
            Kind::Float => r.pick(FLOATS).to_owned(),
            Kind::Bool => r.pick(&["true", "false"]).to_owned(),
            Kind::List => format!("(split {} \",\")", r.pick(STRINGS)),
            Kind::Map => "(json (getv \"/cfg\"))".to_owned(),
            Kind::Any => {
                let k = [Kind::Str, Kind::Int, Kind::Float, Kind::Bool][r.below(4)];
                if r.chance(5) {
                    "nil".to_owned()
                } else {
                    self.literal(k)
                }
            }
        }
    }

    /// A function call producing (mostly) `kind`.
    fn call(&mut self, kind: Kind) -> String {
        self.depth += 1;
        let s = match kind {
            Kind::Str => self.str_call(),
            Kind::Int => self.int_call(),
            Kind::Float => self.float_call(),
            Kind::Bool => self.bool_call(),
            Kind::List => self.list_call(),
            Kind::Map => self.map_call(),
            Kind::Any => {
                let k = [
                    Kind::Str,
                    Kind::Int,
                    Kind::Float,
                    Kind::Bool,
                    Kind::List,
                    Kind::Map,
                ][self.rng.below(6)];
                self.call(k)
            }
        };
        self.depth -= 1;
        s
    }

    fn str_call(&mut self) -> String {
        match self.rng.below(20) {
            0 => format!("getv {}", self.rng.pick(KEYS)),
            1 => format!("getv {} {}", self.rng.pick(KEYS), self.operand(Kind::Str)),
            2 => format!("base {}", self.operand(Kind::Str)),
            3 => format!("dir {}", self.operand(Kind::Str)),
            4 => format!("toUpper {}", self.operand(Kind::Str)),
            5 => format!("toLower {}", self.operand(Kind::Str)),
            6 => format!(
                "replace {} \"a\" \"-\" {}",
                self.operand(Kind::Str),
                self.operand(Kind::Int)
            ),
            7 => format!("trimSuffix {} \"c\"", self.operand(Kind::Str)),
            8..=10 => self.printf(),
            11 => format!("join {} \",\"", self.operand(Kind::List)),
            12 => format!("base64Encode {}", self.operand(Kind::Str)),
            // Not any string: Go would decode to bytes that are not UTF-8, which reconfd
            // (rendering text) refuses by design.
            13 => format!(
                "base64Decode {}",
                self.rng.pick(&[
                    r#"(getv "/b64")"#,
                    r#""YQ""#,
                    r#""aGk=""#,
                    r#"(base64Encode "日本")"#
                ])
            ),
            14 => format!(
                "print {} {}",
                self.operand(Kind::Any),
                self.operand(Kind::Any)
            ),
            15 => format!("println {}", self.operand(Kind::Any)),
            16 => format!(
                "{} {}",
                self.rng.pick(&["html", "js", "urlquery"]),
                self.operand(Kind::Any)
            ),
            // ASCII only: a cut through a UTF-8 character is refused by reconfd (see above).
            17 => format!(
                "slice {} {}",
                self.rng
                    .pick(&[r#""abc""#, r#""""#, r#"(getv "/app/name")"#]),
                self.rng.pick(&["0", "1", "2", "0 1"])
            ),
            18 => format!(
                "index {} {}",
                self.operand(Kind::List),
                self.rng.pick(&["0", "1", "3"])
            ),
            _ => format!("(get {}).Value", self.rng.pick(KEYS)),
        }
    }

    fn int_call(&mut self) -> String {
        match self.rng.below(8) {
            0 => {
                let kind = [Kind::Str, Kind::List, Kind::Map, Kind::Any][self.rng.below(4)];
                format!("len {}", self.operand(kind))
            }
            1..=5 => format!(
                "{} {} {}",
                self.rng.pick(&["add", "sub", "mul", "div", "mod"]),
                self.operand(Kind::Int),
                self.operand(Kind::Int)
            ),
            6 => format!(
                "atoi {}",
                self.rng
                    .pick(&[r#""12""#, r#""-4""#, r#""007""#, r#""+1""#, r#""x""#])
            ),
            _ => format!(
                "atoi (getv {})",
                self.rng.pick(&[
                    r#""/num""#,
                    r#""/app/port""#,
                    r#""/svc/deep/d""#,
                    r#""/app/name""#
                ])
            ),
        }
    }

    fn float_call(&mut self) -> String {
        let key = self.rng.pick(&[r#""n""#, r#""i""#, r#""big""#]);
        format!("index (json (getv \"/cfg\")) {key}")
    }

    fn bool_call(&mut self) -> String {
        match self.rng.below(9) {
            0 | 1 => {
                let k = [Kind::Str, Kind::Int, Kind::Float][self.rng.below(3)];
                let other = if self.rng.chance(85) { k } else { Kind::Any };
                format!(
                    "{} {} {}",
                    self.rng.pick(&["eq", "ne", "lt", "le", "gt", "ge"]),
                    self.operand(k),
                    self.operand(other)
                )
            }
            2 => format!(
                "{} {} {}",
                self.rng.pick(&["and", "or"]),
                self.operand(Kind::Any),
                self.operand(Kind::Any)
            ),
            3 => format!("not {}", self.operand(Kind::Any)),
            4 => format!(
                "contains {} {}",
                self.operand(Kind::Str),
                self.operand(Kind::Str)
            ),
            5 => format!("exists {}", self.rng.pick(KEYS)),
            6 => format!(
                "parseBool {}",
                self.rng.pick(&[
                    r#""true""#,
                    r#""0""#,
                    r#""T""#,
                    r#""FALSE""#,
                    r#""1""#,
                    r#""yes""#
                ])
            ),
            7 => format!(
                "fileExists {}",
                self.rng.pick(&[r#""/""#, r#""/nonexistent/x""#])
            ),
            _ => format!(
                "eq {} {} {}",
                self.operand(Kind::Str),
                self.operand(Kind::Str),
                self.operand(Kind::Str)
            ),
        }
    }

    fn list_call(&mut self) -> String {
        match self.rng.below(12) {
            0 => format!(
                "split {} {}",
                self.operand(Kind::Str),
                self.rng.pick(&[r#"",""#, r#""""#, r#"".""#])
            ),
            1 => format!(
                "seq {} {}",
                self.rng.pick(&["0", "1", "3", "-2"]),
                self.rng.pick(&["0", "2", "5"])
            ),
            2 => format!("getvs {}", self.rng.pick(PATTERNS)),
            3 => format!("gets {}", self.rng.pick(PATTERNS)),
            4 => format!("ls {}", self.rng.pick(DIRS)),
            5 => format!("lsdir {}", self.rng.pick(DIRS)),
            6 => format!("reverse {}", self.operand(Kind::List)),
            7 => format!("sortByLength {}", self.operand(Kind::List)),
            8 => format!("sortKVByLength (gets {})", self.rng.pick(PATTERNS)),
            9 => format!(
                "jsonArray {}",
                self.rng.pick(&[
                    r#""[1,\"a\",null,[2,3],{\"k\":1e21}]""#,
                    r#""[]""#,
                    "`[0.1, 1e-5, 12345678]`",
                    r#""{}""#
                ])
            ),
            10 => format!("slice {} 1", self.operand(Kind::List)),
            _ => "split (getv \"/csv\") \",\"".to_owned(),
        }
    }

    fn map_call(&mut self) -> String {
        match self.rng.below(3) {
            0 => "json (getv \"/cfg\")".to_owned(),
            1 => format!(
                "map \"b\" {} \"a\" {}",
                self.operand(Kind::Any),
                self.operand(Kind::Any)
            ),
            _ => format!(
                "json {}",
                self.rng.pick(&[
                    r#""{\"x\":{\"y\":[1,2]},\"A\":null}""#,
                    r#""{}""#,
                    r#""{\"b\":1e-7,\"a\":[]}""#,
                    r#""[1]""#,
                ])
            ),
        }
    }

    /// printf with a random format: verbs, flags, widths, precisions, argument indexes,
    /// and argument counts that do not always match.
    fn printf(&mut self) -> String {
        let mut format = String::new();
        let verbs = self.rng.below(3) + 1;
        for _ in 0..verbs {
            format.push_str(self.rng.pick(&["", "<", " ", "x="]));
            format.push('%');
            for _ in 0..self.rng.below(3) {
                format.push_str(self.rng.pick(&["-", "+", "#", "0", " "]));
            }
            if self.rng.chance(30) {
                format.push_str(self.rng.pick(&["1", "5", "12"]));
            }
            if self.rng.chance(25) {
                format.push_str(self.rng.pick(&[".0", ".2", ".10", "."]));
            }
            if self.rng.chance(4) {
                format.push_str("[1]");
            }
            format.push_str(self.rng.pick(&[
                "v", "v", "+v", "#v", "s", "s", "q", "d", "d", "x", "X", "o", "b", "e", "f", "g",
                "G", "t", "T", "c", "U", "%", "z",
            ]));
        }
        let args = (verbs + self.rng.below(3)).saturating_sub(1);
        let mut s = format!("printf \"{}\"", format.replace('"', "\\\""));
        for _ in 0..args {
            s.push(' ');
            s.push_str(&self.operand(Kind::Any));
        }
        s
    }

    /// An action's pipeline: a call or operand, maybe piped into more commands.
    fn pipeline(&mut self) -> String {
        let k = [
            Kind::Str,
            Kind::Int,
            Kind::Float,
            Kind::Bool,
            Kind::List,
            Kind::Map,
            Kind::Any,
        ][self.rng.below(7)];
        let mut p = if self.rng.chance(70) {
            self.call(k)
        } else {
            self.operand(k)
        };
        if self.rng.chance(15) {
            p.push_str(self.rng.pick(&[
                " | printf \"%v\"",
                " | len",
                " | printf \"%q|%v\" \"x\"",
                " | print",
                " | html",
                " | toUpper",
            ]));
        }
        p
    }

    fn open(&mut self) -> &'static str {
        if self.rng.chance(20) {
            "{{- "
        } else {
            "{{"
        }
    }

    fn close(&mut self) -> &'static str {
        if self.rng.chance(20) {
            " -}}"
        } else {
            "}}"
        }
    }

    fn block(&mut self, items: usize) -> String {
        let mut s = String::new();
        for _ in 0..items {
            s.push_str(&self.item());
        }
        s
    }

    /// One piece of a template body.
    fn item(&mut self) -> String {
        let nested = self.depth < 2;
        let (o, c) = (self.open(), self.close());
        match self.rng.below(if nested { 16 } else { 8 }) {
            0 | 1 => self.rng.pick(TEXT).to_owned(),
            2..=4 => format!("{o}{}{c}", self.pipeline()),
            5 => {
                let name = format!("$v{}", self.rng.below(4));
                let p = self.pipeline();
                let declared = self.scopes.iter().flatten().any(|v| *v == name);
                if declared && self.rng.chance(50) {
                    format!("{o}{name} = {p}{c}")
                } else {
                    self.scopes.last_mut().unwrap().push(name.clone());
                    format!("{o}{name} := {p}{c}")
                }
            }
            6 => format!("{o}/* {} */{c}", self.rng.pick(&["note", "", "a\nb"])),
            7 if self.loop_depth > 0 => format!(
                "{{{{if {}}}}}{{{{{}}}}}{{{{end}}}}",
                self.operand(Kind::Bool),
                self.rng.pick(&["break", "continue"])
            ),
            7 => format!("{o}.{c}"),
            8 | 9 => self.if_block(),
            10 | 11 => self.range_block(),
            12 => self.with_block(),
            13 if self.depth == 0 => self.define_block(),
            14 if self.rng.chance(20) => self.mistake(),
            _ => format!("{o}{}{c}", self.printf()),
        }
    }

    /// A body in a new variable scope.
    fn scoped(&mut self, vars: &[&str], items: usize) -> String {
        self.depth += 1;
        self.scopes
            .push(vars.iter().map(|v| (*v).to_owned()).collect());
        let s = self.block(items);
        self.scopes.pop();
        self.depth -= 1;
        s
    }

    fn if_block(&mut self) -> String {
        let kind = if self.rng.chance(70) {
            Kind::Bool
        } else {
            Kind::Any
        };
        let cond = self.operand(kind);
        let mut s = format!("{{{{if {cond}}}}}{}", self.scoped(&[], 2));
        if self.rng.chance(30) {
            let c2 = self.operand(Kind::Bool);
            s.push_str(&format!("{{{{else if {c2}}}}}{}", self.scoped(&[], 1)));
        }
        if self.rng.chance(40) {
            s.push_str(&format!("{{{{else}}}}{}", self.scoped(&[], 1)));
        }
        s + "{{end}}"
    }

    fn range_block(&mut self) -> String {
        let kind = if self.rng.chance(80) {
            Kind::List
        } else {
            Kind::Any
        };
        let list = self.operand(kind);
        let (decl, vars): (String, Vec<&str>) = match self.rng.below(3) {
            0 => (String::new(), vec![]),
            1 => ("$e := ".into(), vec!["$e"]),
            _ => ("$i, $e := ".into(), vec!["$i", "$e"]),
        };
        self.loop_depth += 1;
        let mut body = self.scoped(&vars, 2);
        if self.rng.chance(50) {
            body.push_str(
                self.rng
                    .pick(&["{{.}}", "{{.Key}}={{.Value}}", "{{$}}", "[{{.}}]"]),
            );
        }
        self.loop_depth -= 1;
        let mut s = format!("{{{{range {decl}{list}}}}}{body}");
        if self.rng.chance(30) {
            s.push_str(&format!("{{{{else}}}}{}", self.scoped(&[], 1)));
        }
        s + "{{end}}"
    }

    fn with_block(&mut self) -> String {
        let p = self.pipeline();
        let mut s = format!("{{{{with {p}}}}}{{{{.}}}}{}", self.scoped(&[], 1));
        if self.rng.chance(40) {
            s.push_str(&format!("{{{{else}}}}{}", self.scoped(&[], 1)));
        }
        s + "{{end}}"
    }

    fn define_block(&mut self) -> String {
        if !self.defined.is_empty() && self.rng.chance(50) {
            let name = self.defined[self.rng.below(self.defined.len())].clone();
            let arg = self.operand(Kind::Any);
            return format!("{{{{template \"{name}\" {arg}}}}}");
        }
        let name = format!("d{}", self.defined.len());
        // A defined template has its own scope: only `$` and `.`.
        let saved = std::mem::replace(&mut self.scopes, vec![Vec::new()]);
        let saved_loop = std::mem::replace(&mut self.loop_depth, 0);
        let body = self.scoped(&[], 2) + "<{{.}}>";
        self.scopes = saved;
        self.loop_depth = saved_loop;
        self.defined.push(name.clone());
        if self.rng.chance(30) {
            format!(
                "{{{{block \"{name}\" {}}}}}{body}{{{{end}}}}",
                self.operand(Kind::Any)
            )
        } else {
            format!("{{{{define \"{name}\"}}}}{body}{{{{end}}}}")
        }
    }

    /// Something Go refuses at parse or execution time.
    fn mistake(&mut self) -> String {
        self.rng
            .pick(&[
                "{{nosuchfunc 1}}",
                "{{end}}",
                "{{if}}",
                "{{0x}}",
                "{{$undefined}}",
                "{{getv}}",
                "{{index 1 2}}",
                "{{template \"nosuch\"}}",
                "{{printf}}",
                "{{(1}}",
                "{{break}}",
                "{{.Key.Value}}",
                "{{\"s\" | printf \"%d\" 1 2}}",
                "{{len 1}}",
                "{{'ab'}}",
                "{{ /* c */ }}",
                "{{1 2}}",
                "{{get \"/missing\"}}",
                "{{range 3}}{{end}}",
                "{{else}}",
            ])
            .to_owned()
    }

    fn template(&mut self) -> String {
        self.scopes = vec![Vec::new()];
        self.defined.clear();
        self.depth = 0;
        self.loop_depth = 0;
        let n = self.rng.below(6) + 2;
        self.block(n)
    }
}

// ---- the oracle ----

/// Go 1.19, or why not.
fn go_binary() -> Result<PathBuf, String> {
    let go = std::env::var_os("GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/go-1.19/bin/go"));
    let out = Command::new(&go)
        .arg("version")
        .output()
        .map_err(|e| format!("{}: {e} (install golang-1.19-go)", go.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version.starts_with("go version go1.19 ") && !version.starts_with("go version go1.19.") {
        return Err(format!("{} is not Go 1.19: {version}", go.display()));
    }
    Ok(go)
}

/// Builds the oracle into `dir`.
fn build_oracle(go: &Path, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gotemplate/oracle");
    let bin = dir.join("oracle");
    let out = Command::new(go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "building the oracle failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// Go's result for one template: the output, or the error text.
type GoResult = Result<Vec<u8>, String>;

/// Renders every template in one oracle process.
fn oracle_batch(
    bin: &Path,
    templates: &[String],
    data: &BTreeMap<String, String>,
) -> Vec<GoResult> {
    let mut input = Vec::new();
    for t in templates {
        let req = serde_json::json!({"name": NAME, "template": t, "data": data, "prefix": ""});
        serde_json::to_writer(&mut input, &req).unwrap();
        input.push(b'\n');
    }
    let mut child = Command::new(bin)
        .arg("-batch")
        .env("RECONFD_CORPUS_VAR", "corpus-value")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the oracle");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("oracle output");
    writer.join().unwrap().expect("write to the oracle");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<GoResult> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).expect("oracle answer");
            let bytes = match v["out"].as_str() {
                Some(b64) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("oracle base64"),
                None => Vec::new(), // Go encodes an empty []byte as null
            };
            if v["ok"].as_bool().unwrap() {
                Ok(bytes)
            } else {
                Err(String::from_utf8_lossy(&bytes).into_owned())
            }
        })
        .collect();
    assert_eq!(answers.len(), templates.len(), "one answer per template");
    answers
}

// ---- reconfd ----

/// Where reconfd failed, and its message (without what it adds to Go's: the path).
enum Ours {
    Rendered(String),
    Parse(String),
    Exec(String),
}

fn message(e: TemplateError) -> String {
    let TemplateError::Engine { message, .. } = e else {
        panic!("unexpected error {e}");
    };
    // reconfd names the full etcd key of a missing key; Go does not.
    match message.find(" (etcd key \"") {
        Some(i) => {
            let rest = &message[i + " (etcd key \"".len()..];
            let end = rest.find("\")").map_or(rest.len(), |j| j + 2);
            format!("{}{}", &message[..i], &rest[end..])
        }
        None => message,
    }
}

fn ours(source: &str, kind: EngineKind, view: &Arc<KvView>) -> Ours {
    let path = Path::new(NAME);
    match Template::from_source(path, source, kind) {
        Err(e) => Ours::Parse(message(e)),
        Ok(t) => match t.render(Arc::clone(view)) {
            Ok(s) => Ours::Rendered(s),
            Err(e) => Ours::Exec(message(e)),
        },
    }
}

/// The documented difference (docs/migrating-from-confd.md): Go's strings are bytes and a
/// template can cut a UTF-8 character in two (`slice`, `base64Decode`); reconfd renders text
/// and refuses to, naming why.
fn bytes_not_text(go: &GoResult, ours: &Ours) -> bool {
    let refused = |m: &str| {
        m.contains("(reconfd renders text, not bytes)")
            || m.contains("the decoded data is not UTF-8 text")
    };
    match (go, ours) {
        // The cut string may only be an intermediate one, so Go's output can be UTF-8, or
        // Go can fail later on what reconfd refused first.
        (_, Ours::Exec(m)) => refused(m),
        _ => false,
    }
}

/// Why reconfd's Go engine disagrees with Go, if it does.
fn compare(go: &GoResult, ours: &Ours) -> Option<String> {
    match (go, ours) {
        (Ok(want), Ours::Rendered(got)) if want == got.as_bytes() => None,
        (Ok(want), Ours::Rendered(got)) => Some(format!(
            "output differs\n  go:  {:?}\n  ours: {got:?}",
            String::from_utf8_lossy(want)
        )),
        (Ok(want), Ours::Parse(e) | Ours::Exec(e)) => Some(format!(
            "Go renders {:?}, reconfd fails: {e}",
            String::from_utf8_lossy(want)
        )),
        (Err(e), Ours::Rendered(got)) => Some(format!("Go fails ({e}), reconfd renders {got:?}")),
        (Err(e), Ours::Parse(m) | Ours::Exec(m)) => {
            let go_exec = e.contains(": executing \"");
            let our_exec = matches!(ours, Ours::Exec(_));
            if go_exec != our_exec {
                Some(format!("error kinds differ\n  go:   {e}\n  ours: {m}"))
            } else if m != e {
                Some(format!("error messages differ\n  go:   {e}\n  ours: {m}"))
            } else {
                None
            }
        }
    }
}

/// Why migrate's Tera translation of `source` disagrees with Go, if it translates.
fn compare_translation(source: &str, go: &GoResult, view: &Arc<KvView>) -> Option<String> {
    let Outcome::Translated(tera) = translate(source) else {
        return None;
    };
    let why = match (go, ours(&tera, EngineKind::Tera, view)) {
        (Ok(want), Ours::Rendered(got)) if want == got.as_bytes() => return None,
        (Err(_), Ours::Parse(_) | Ours::Exec(_)) => return None,
        (Ok(want), Ours::Rendered(got)) => {
            format!("go:  {:?}\n  tera: {got:?}", String::from_utf8_lossy(want))
        }
        (Ok(_), Ours::Parse(e) | Ours::Exec(e)) => format!("Go renders, Tera fails: {e}"),
        (Err(e), Ours::Rendered(got)) => format!("Go fails ({e}), Tera renders {got:?}"),
    };
    Some(format!(
        "migrate's translation differs\n  tera source: {tera:?}\n  {why}"
    ))
}

#[test]
fn generated_templates_render_as_go_renders_them() {
    let go = match go_binary() {
        Ok(go) => go,
        Err(why) => {
            if util::prerequisite(false, &why) {
                unreachable!();
            }
            return;
        }
    };
    let seed: u64 = std::env::var("RECONFD_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let count: usize = std::env::var("RECONFD_DIFF_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut gen = Gen::new(seed);
    let templates: Vec<String> = (0..count).map(|_| gen.template()).collect();

    let tmp = tempfile::tempdir().unwrap();
    let oracle = build_oracle(&go, tmp.path());
    let data = data();
    let answers = oracle_batch(&oracle, &templates, &data);
    let view = Arc::new(KvView::new(1, "/", data));

    let (mut failures, mut go_errors, mut translated, mut not_text) = (Vec::new(), 0, 0, 0);
    for (i, (t, go)) in templates.iter().zip(&answers).enumerate() {
        go_errors += usize::from(go.is_err());
        let mine = ours(t, EngineKind::Go, &view);
        if bytes_not_text(go, &mine) {
            not_text += 1;
            continue;
        }
        if let Some(why) = compare(go, &mine) {
            failures.push(format!("#{i} {t:?}\n  {why}"));
        }
        if matches!(translate(t), Outcome::Translated(_)) {
            translated += 1;
        }
        if let Some(why) = compare_translation(t, go, &view) {
            failures.push(format!("#{i} {t:?}\n  {why}"));
        }
    }
    println!(
        "{count} generated templates (seed {seed}): {} rendered by Go, {go_errors} Go errors, \
         {translated} translated to Tera, {not_text} with strings that are not \
         UTF-8 (a documented difference), {} disagreements",
        count - go_errors,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {count} generated templates (seed {seed}) disagree with Go:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
