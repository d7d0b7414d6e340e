//! Go template → Tera, only where the translation is exact.
//!
//! "Exact" means: for every possible content of the store (the resource's etcd keys), the Tera
//! template renders the same bytes under reconfd's Tera engine as the Go template renders
//! under reconfd's Go engine (confd's semantics; both engines call the same implementation of
//! each confd function), and where the Go render fails the Tera render fails too (the
//! messages differ). Everything else is refused with the reason
//! and the position of the first construct that cannot be translated; the caller then keeps
//! the Go template, which reconfd renders natively.
//!
//! How exactness is kept:
//!
//! - **Types.** Every expression gets a static type (string, int, bool, a list of strings or
//!   ints, a `get`/`gets` item, a `lookupSRV` record, or lists of those). Values are printed
//!   only where Go's formatting is known: strings, ints and bools as they are, lists of
//!   strings or ints as `[a b]`. Function arguments must have the type the Go function takes,
//!   or Go would fail where Tera might not.
//! - **Text** is Go's text after trim markers, taken from the Go engine's own parse tree
//!   (`crate::template::gotext`); a `{` that would open a Tera tag is written as
//!   `{{ "{" }}`. Tera itself never trims or rewrites text without `-` markers.
//! - **Truthiness** (`if`, `with`, `and`, `or`, `not`, range `else`) is the same in both for
//!   these types; Tera's `and`/`or` also return the deciding operand, as Go's do, and stop
//!   evaluating at the same operand.
//! - **Variables** get a unique Tera name per Go declaration, so Go's block scoping needs no
//!   Tera scope. Assignments (`$x = ...`) become `set` in the declaring loop, or `set_global`
//!   when the variable belongs to the top level; any other assignment is refused.
//! - **Errors** stay errors: an index out of range is an undefined value in Tera, so `index`
//!   is translated only where Tera fails on it (printed, or passed to a function); an `eq`
//!   operand Tera might skip must not be able to fail.
//!
//! Not translated, with the reason given: `define`/`template`/`block`; maps and JSON
//! (`json`, `jsonArray`, `map`: Go numbers are float64); `datetime` (a time.Time in Go);
//! `ls`/`lsdir` of `/` or of a computed path (reconfd's Go engine lists `/` as memkv does,
//! Tera's `ls` does not); `reverse`/`sortByLength`/`sortKVByLength` of a variable (confd
//! changes the variable's list in place); `printf` beyond `%s %d %v %t %%`; `len` of a string
//! (bytes in Go, characters in Tera); `html`, `js`, `urlquery`, `slice`, `call`; `$` and `.`
//! at the top level (confd's nil data); floats, hex/octal/char literals, `nil`.

use std::collections::HashSet;

use crate::store::gopath;
use crate::template::functions::{self, ConfdFunction, GoType};
use crate::template::gotext::parse::{BranchNode, CommandNode, Expr, ListNode, Node, PipeNode};
use crate::template::{EngineKind, Template};

/// Why a template stays a Go template: the first construct that has no exact translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 1-based line in the template.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
    /// What cannot be translated, and why.
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.reason)
    }
}

/// The result of translating one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The exact Tera translation.
    Translated(String),
    /// Keep the Go template.
    Refused(Refusal),
    /// The template does not parse as a Go template (Go's message, with the line).
    Invalid(String),
}

/// Translates Go template `src` to Tera where that is exact.
pub fn translate(src: &str) -> Outcome {
    let trees = match crate::template::gotext::parse_source(TEMPLATE_NAME, src) {
        Ok(t) => t,
        Err(e) => return Outcome::Invalid(e.message),
    };
    if let Some(&offset) = trees.defines.first() {
        return Outcome::Refused(refusal(
            src,
            offset,
            "{{define}} and {{block}} (named templates) are not translated".into(),
        ));
    }
    let Some(tree) = trees.trees.get(TEMPLATE_NAME) else {
        return Outcome::Invalid(format!("template: {TEMPLATE_NAME}: no template body"));
    };
    let mut assigned = HashSet::new();
    collect_assigned(tree, &mut assigned);
    let mut tx = Tx {
        src,
        out: String::new(),
        scopes: vec![Vec::new()],
        names: HashSet::new(),
        depth: 0,
        range_else: Vec::new(),
        assigned,
    };
    if let Err(r) = tx.run(tree) {
        return Outcome::Refused(r);
    }
    // A translation that Tera cannot compile is a bug here; never hand it out.
    let check = std::path::Path::new("translation.tera");
    match Template::from_source(check, &tx.out, EngineKind::Tera) {
        Ok(_) => Outcome::Translated(tx.out),
        Err(e) => Outcome::Refused(refusal(
            src,
            0,
            format!("the translation does not compile (a bug in reconfd migrate): {e}"),
        )),
    }
}

/// The name the template is parsed under (it appears in Go's parse errors).
const TEMPLATE_NAME: &str = "template.tmpl";

fn refusal(src: &str, offset: usize, reason: String) -> Refusal {
    let (line, col) = line_col(src, offset);
    Refusal { line, col, reason }
}

/// The 1-based line and column (in characters) of byte `offset`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before, |nl| &before[nl + 1..])
        .chars()
        .count()
        + 1;
    (line, col)
}

/// The integer a number literal spells when it is plain decimal (`0`, `42`, `-7`: no `+`,
/// no leading zeros, no `_`, no other base, fraction or exponent).
fn decimal_literal(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// The translator's type for a confd function's Go type, where it has one.
fn ty_of(t: GoType) -> Option<Ty> {
    Some(match t {
        GoType::Str => Ty::Str,
        GoType::Int => Ty::Int,
        GoType::Bool => Ty::Bool,
        GoType::StrSlice => Ty::ListStr,
        GoType::IntSlice => Ty::ListInt,
        GoType::KvPairs | GoType::KvSlice => Ty::ListKv,
        GoType::Kv => Ty::Kv,
        GoType::SrvSlice => Ty::ListSrv,
        _ => return None,
    })
}

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Bool,
    /// One of string, int or bool (an `and`/`or` of mixed scalars).
    Scalar,
    /// Some value whose truthiness is known to agree (an `and`/`or` of mixed kinds).
    Mixed,
    ListStr,
    ListInt,
    /// `gets`' result (memkv.KVPairs) or `sortKVByLength`'s.
    ListKv,
    /// `get`'s result (memkv.KVPair): `{key, value}` in Tera.
    Kv,
    /// `lookupSRV`'s result.
    ListSrv,
    /// A `lookupSRV` record (net.SRV): `{target, port, priority, weight}` in Tera.
    Srv,
}

impl Ty {
    fn elem(self) -> Option<Ty> {
        match self {
            Ty::ListStr => Some(Ty::Str),
            Ty::ListInt => Some(Ty::Int),
            Ty::ListKv => Some(Ty::Kv),
            Ty::ListSrv => Some(Ty::Srv),
            _ => None,
        }
    }

    fn go(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::Bool => "bool",
            Ty::Scalar => "string, int or bool",
            Ty::Mixed => "value of mixed type",
            Ty::ListStr => "[]string",
            Ty::ListInt => "[]int",
            Ty::ListKv => "memkv.KVPairs",
            Ty::Kv => "memkv.KVPair",
            Ty::ListSrv => "[]*net.SRV",
            Ty::Srv => "*net.SRV",
        }
    }

    /// The fields a Go template can read, with their Tera names and types.
    fn field(self, name: &str) -> Option<(&'static str, Ty)> {
        match (self, name) {
            (Ty::Kv, "Key") => Some(("key", Ty::Str)),
            (Ty::Kv, "Value") => Some(("value", Ty::Str)),
            (Ty::Srv, "Target") => Some(("target", Ty::Str)),
            (Ty::Srv, "Port") => Some(("port", Ty::Int)),
            (Ty::Srv, "Priority") => Some(("priority", Ty::Int)),
            (Ty::Srv, "Weight") => Some(("weight", Ty::Int)),
            _ => None,
        }
    }
}

/// A literal value known at translation time.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
}

/// A translated expression.
#[derive(Debug, Clone)]
struct Val {
    /// Tera expression, atomic (a name, literal, call, subscript, or parenthesized).
    code: String,
    ty: Ty,
    /// Evaluating it may fail (missing key, bad number, bad pattern...).
    fallible: bool,
    /// `false` when a Go error is an undefined value in Tera (an index out of range), which
    /// Tera reports only when printed or passed to a function that checks its argument.
    strict: bool,
    /// A plain variable (its list may be seen again elsewhere).
    var: bool,
    /// A Go variable that some `$x = ...` assigns: it may change under whoever shares it.
    mutable: bool,
    lit: Option<Lit>,
}

impl Val {
    fn new(code: String, ty: Ty) -> Self {
        Val {
            code,
            ty,
            fallible: false,
            strict: true,
            var: false,
            mutable: false,
            lit: None,
        }
    }

    fn var(name: &str, ty: Ty) -> Self {
        Val {
            var: true,
            ..Val::new(name.to_owned(), ty)
        }
    }

    /// The Tera expression that prints this value as Go prints it, if there is one.
    fn printed(&self) -> Option<String> {
        match self.ty {
            Ty::Str | Ty::Int | Ty::Bool | Ty::Scalar => Some(self.code.clone()),
            // fmt prints a slice of strings or ints as [a b c].
            Ty::ListStr | Ty::ListInt => Some(format!(
                "(\"[\" ~ join(list={}, sep=\" \") ~ \"]\")",
                self.code
            )),
            _ => None,
        }
    }
}

/// A Go variable in scope.
#[derive(Debug, Clone)]
struct Var {
    go: String,
    tera: String,
    ty: Ty,
    /// Tera for-loop depth of the declaration.
    depth: usize,
}

/// A parameter of a reconfd Tera function.
struct Param {
    kw: &'static str,
    ty: Ty,
    /// The function rejects an undefined value here (a required argument), so an index out
    /// of range still fails.
    checked: bool,
}

const fn p(kw: &'static str, ty: Ty) -> Param {
    Param {
        kw,
        ty,
        checked: true,
    }
}

const fn opt(kw: &'static str, ty: Ty) -> Param {
    Param {
        kw,
        ty,
        checked: false,
    }
}

/// Names a Tera variable must not take, besides the functions' names: Tera's keywords.
const RESERVED: &[&str] = &[
    "true", "True", "false", "False", "loop", "self", "super", "and", "or", "not", "is", "in",
    "if", "else", "continue", "break", "none", "None", "null", "range", "now", "throw",
];

/// The largest integer literal translated (Tera parses literals up to i64, but not i64::MIN).
const MAX_LITERAL: i64 = 1 << 53;

type R<T> = Result<T, Refusal>;

struct Tx<'s> {
    src: &'s str,
    out: String,
    scopes: Vec<Vec<Var>>,
    names: HashSet<String>,
    /// Tera for-loop depth.
    depth: usize,
    /// Loop depths whose `{{range}}`'s else list is being translated (innermost last).
    range_else: Vec<usize>,
    /// Go variables assigned (`$x = ...`) somewhere in the template. Dot never shares a Tera
    /// variable with one of them: assigning `$x` does not change dot in Go.
    assigned: HashSet<String>,
}

impl Tx<'_> {
    fn refuse<T>(&self, offset: usize, reason: impl Into<String>) -> R<T> {
        Err(refusal(self.src, offset, reason.into()))
    }

    fn run(&mut self, tree: &ListNode) -> R<()> {
        self.list(tree, &None)
    }

    // ---- statements ----

    fn list(&mut self, l: &ListNode, dot: &Option<Val>) -> R<()> {
        for n in &l.nodes {
            self.node(n, dot)?;
        }
        Ok(())
    }

    /// A body with its own variable scope.
    fn scoped(&mut self, l: &ListNode, dot: &Option<Val>) -> R<()> {
        self.scopes.push(Vec::new());
        let r = self.list(l, dot);
        self.scopes.pop();
        r
    }

    fn node(&mut self, n: &Node, dot: &Option<Val>) -> R<()> {
        match n {
            Node::Text(t) => {
                push_text(&mut self.out, &t.text);
                Ok(())
            }
            Node::Action(a) => self.action(&a.pipe, dot),
            Node::If(b) => {
                self.if_chain(b, dot, "if")?;
                self.out.push_str("{% endif %}");
                Ok(())
            }
            Node::Range(b) => self.range(b, dot),
            Node::With(b) => self.with(b, dot),
            Node::Template(t) => self.refuse(
                t.pos,
                "{{template}} and {{block}} (named templates) are not translated",
            ),
            Node::Break(p) | Node::Continue(p) => {
                if self.depth == 0 {
                    return self.refuse(*p, "break/continue outside range");
                }
                // In Go a {{break}} there ends only the range whose else it is in (a
                // no-op) and a {{continue}} goes on to the enclosing range; Tera would
                // break the enclosing loop.
                if self.range_else.last() == Some(&self.depth) {
                    return self.refuse(*p, "break/continue in a range's else branch");
                }
                let kw = if matches!(n, Node::Break(_)) {
                    "break"
                } else {
                    "continue"
                };
                self.out.push_str(&format!("{{% {kw} %}}"));
                Ok(())
            }
        }
    }

    fn action(&mut self, pipe: &PipeNode, dot: &Option<Val>) -> R<()> {
        if pipe.decl.is_empty() {
            let v = self.pipeline(pipe, dot)?;
            let Some(code) = v.printed() else {
                return self.refuse(
                    pipe.pos,
                    format!(
                        "prints a {}, which Go and Tera format differently",
                        v.ty.go()
                    ),
                );
            };
            self.out.push_str(&format!("{{{{ {code} }}}}"));
            return Ok(());
        }
        let v = self.pipeline(pipe, dot)?;
        let v = self.strict(v, pipe.pos)?;
        if pipe.is_assign {
            self.assign(&pipe.decl[0].1, v, pipe.pos)
        } else {
            self.declare(&pipe.decl[0].1, v);
            Ok(())
        }
    }

    /// `{{$x := v}}`: a fresh Tera variable.
    fn declare(&mut self, go: &str, v: Val) -> String {
        let name = self.fresh(go.trim_start_matches('$'));
        self.out
            .push_str(&format!("{{% set {name} = {} %}}", v.code));
        self.bind(go, &name, v.ty);
        name
    }

    /// Puts Go variable `go` in the innermost scope as Tera variable `tera`.
    fn bind(&mut self, go: &str, tera: &str, ty: Ty) {
        let var = Var {
            go: go.to_owned(),
            tera: tera.to_owned(),
            ty,
            depth: self.depth,
        };
        self.scopes.last_mut().expect("a scope").push(var);
    }

    fn assign(&mut self, go: &str, v: Val, offset: usize) -> R<()> {
        let Some(var) = self.lookup(go) else {
            return self.refuse(offset, format!("undefined variable {go}"));
        };
        if var.ty != v.ty {
            return self.refuse(
                offset,
                format!(
                    "assigns a {} to {go}, which holds a {}",
                    v.ty.go(),
                    var.ty.go()
                ),
            );
        }
        let tag = if var.depth == self.depth {
            "set"
        } else if var.depth == 0 {
            "set_global"
        } else {
            return self.refuse(
                offset,
                format!(
                    "assigns {go}, declared in an enclosing range: Tera cannot set a variable \
                     of an outer loop"
                ),
            );
        };
        self.out
            .push_str(&format!("{{% {tag} {} = {} %}}", var.tera, v.code));
        Ok(())
    }

    /// The value a control structure tests, with its `$x :=` declaration if any. With a
    /// `hint`, the value is held in a variable (named after the hint) unless it is one.
    fn control_value(&mut self, b: &BranchNode, dot: &Option<Val>, hint: &str) -> R<Val> {
        let off = b.pipe.pos;
        if b.pipe.is_assign {
            return self.refuse(off, "assignment in a control pipeline is not translated");
        }
        let v = self.pipeline(&b.pipe, dot)?;
        let v = self.strict(v, off)?;
        let v = match b.pipe.decl.first().map(|d| &d.1) {
            Some(go) => {
                let name = self.declare(go, v.clone());
                Val {
                    mutable: self.assigned.contains(go.as_str()),
                    ..Val::var(&name, v.ty)
                }
            }
            None => v,
        };
        if hint.is_empty() || (v.var && !v.mutable) {
            return Ok(v);
        }
        let name = self.fresh(hint);
        self.out
            .push_str(&format!("{{% set {name} = {} %}}", v.code));
        Ok(Val::var(&name, v.ty))
    }

    /// `{% if %}` (`keyword` "if", or "elif" in a chain) and its branches, without the
    /// closing `{% endif %}`.
    fn if_chain(&mut self, b: &BranchNode, dot: &Option<Val>, keyword: &str) -> R<()> {
        self.scopes.push(Vec::new());
        let cond = self.control_value(b, dot, "")?;
        self.out
            .push_str(&format!("{{% {keyword} {} %}}", cond.code));
        let r = self.branches(b, dot, &None);
        self.scopes.pop();
        r
    }

    /// The body (with `body_dot`, or the outer dot) and the else branch of an if or with.
    fn branches(&mut self, b: &BranchNode, dot: &Option<Val>, body_dot: &Option<Val>) -> R<()> {
        let inner = if body_dot.is_some() { body_dot } else { dot };
        self.scoped(&b.list, inner)?;
        let Some(else_body) = &b.else_list else {
            return Ok(());
        };
        // `{{else if c}}` arrives as an else branch holding only that if: use elif (for an
        // if; a with's else stays a plain else around it, which reads more easily).
        if let [Node::If(next)] = else_body.nodes.as_slice() {
            if next.pipe.decl.is_empty() && body_dot.is_none() {
                return self.if_chain(next, dot, "elif");
            }
        }
        self.out.push_str("{% else %}");
        self.scoped(else_body, dot)
    }

    fn with(&mut self, b: &BranchNode, dot: &Option<Val>) -> R<()> {
        self.scopes.push(Vec::new());
        let r = self.control_value(b, dot, "it").and_then(|v| {
            self.out.push_str(&format!("{{% if {} %}}", v.code));
            self.branches(b, dot, &Some(v))
        });
        self.scopes.pop();
        r?;
        self.out.push_str("{% endif %}");
        Ok(())
    }

    fn range(&mut self, b: &BranchNode, dot: &Option<Val>) -> R<()> {
        let off = b.pipe.pos;
        if b.pipe.is_assign {
            return self.refuse(off, "range assigning existing variables is not translated");
        }
        let target = self.pipeline(&b.pipe, dot)?;
        let target = self.strict(target, off)?;
        let Some(elem) = target.ty.elem() else {
            return self.refuse(
                off,
                format!(
                    "ranges over a {}: only lists (of strings, ints, get items, SRV records) \
                     are translated",
                    target.ty.go()
                ),
            );
        };
        let hint = match elem {
            Ty::Kv => "kv",
            Ty::Srv => "srv",
            Ty::Int => "n",
            _ => "item",
        };
        let decl: Vec<&String> = b.pipe.decl.iter().map(|d| &d.1).collect();
        let (index, value) = match decl.as_slice() {
            [] => (None, None),
            [v] => (None, Some(v)),
            [i, v] => (Some(i), Some(v)),
            _ => return self.refuse(off, "too many declarations in range"),
        };
        let index = index.map(|i| (i, self.fresh(i.trim_start_matches('$'))));
        // The element is dot and, unless it is assigned somewhere, the declared variable too.
        let shared = value.filter(|v| !self.assigned.contains(v.as_str()));
        let dot_name = self.fresh(shared.map_or(hint, |v| v.trim_start_matches('$')));
        self.out
            .push_str(&format!("{{% for {dot_name} in {} %}}", target.code));
        self.depth += 1;
        self.scopes.push(Vec::new());
        if let Some((go, name)) = &index {
            self.out
                .push_str(&format!("{{% set {name} = loop.index0 %}}"));
            self.bind(go, name, Ty::Int);
        }
        match (value, shared) {
            (Some(go), Some(_)) => self.bind(go, &dot_name, elem),
            (Some(go), None) => {
                let name = self.fresh(go.trim_start_matches('$'));
                self.out
                    .push_str(&format!("{{% set {name} = {dot_name} %}}"));
                self.bind(go, &name, elem);
            }
            _ => {}
        }
        let value = dot_name;
        let r = self.scoped(&b.list, &Some(Val::var(&value, elem)));
        self.scopes.pop();
        self.depth -= 1;
        r?;
        if let Some(else_body) = &b.else_list {
            // Tera runs a for loop's else branch outside the loop's scope, as Go does.
            self.out.push_str("{% else %}");
            self.range_else.push(self.depth);
            let r = self.scoped(else_body, dot);
            self.range_else.pop();
            r?;
        }
        self.out.push_str("{% endfor %}");
        Ok(())
    }

    // ---- expressions ----

    fn pipeline(&mut self, pipe: &PipeNode, dot: &Option<Val>) -> R<Val> {
        let mut prev: Option<Val> = None;
        for c in &pipe.cmds {
            prev = Some(self.command(c, dot, prev)?);
        }
        match prev {
            Some(v) => Ok(v),
            None => self.refuse(pipe.pos, "empty pipeline"),
        }
    }

    fn command(&mut self, c: &CommandNode, dot: &Option<Val>, piped: Option<Val>) -> R<Val> {
        let Some(first) = c.args.first() else {
            return self.refuse(c.pos, "empty command");
        };
        if let Expr::Identifier(pos, name) = first {
            let mut args = Vec::with_capacity(c.args.len());
            for a in &c.args[1..] {
                args.push(self.operand(a, dot)?);
            }
            // Go passes the previous command's result as the last argument.
            args.extend(piped);
            return self.call(name, *pos, args);
        }
        if let Some(extra) = c.args.get(1) {
            return self.refuse(
                extra.pos(),
                "an argument to something that is not a function",
            );
        }
        if piped.is_some() {
            return self.refuse(first.pos(), "a pipeline stage that is not a function");
        }
        self.operand(first, dot)
    }

    fn operand(&mut self, e: &Expr, dot: &Option<Val>) -> R<Val> {
        match e {
            Expr::Dot(p) => match dot {
                Some(d) => Ok(d.clone()),
                None => self.refuse(
                    *p,
                    "`.` outside range and with is confd's nil data (prints <no value>)",
                ),
            },
            Expr::Field(p, fields) => match dot {
                Some(d) => self.fields(d.clone(), fields, *p),
                None => self.refuse(*p, "a field of confd's nil data"),
            },
            Expr::Variable(p, idents) => {
                let (name, fields) = (&idents[0], &idents[1..]);
                if name == "$" {
                    return self.refuse(*p, "`$` is confd's nil data");
                }
                let Some(var) = self.lookup(name) else {
                    return self.refuse(*p, format!("undefined variable {name}"));
                };
                let v = Val {
                    mutable: self.assigned.contains(name.as_str()),
                    ..Val::var(&var.tera, var.ty)
                };
                if fields.is_empty() {
                    Ok(v)
                } else {
                    self.fields(v, fields, *p)
                }
            }
            // An identifier as an argument is a call without arguments.
            Expr::Identifier(p, name) => self.call(name, *p, Vec::new()),
            Expr::String(_, _, go) => Ok(Val {
                lit: Some(Lit::Str(go.to_string())),
                ..Val::new(tera_str(go), Ty::Str)
            }),
            Expr::Number(p, n) => match decimal_literal(&n.text) {
                Some(i) if i.abs() <= MAX_LITERAL => {
                    let code = if i < 0 {
                        format!("({i})")
                    } else {
                        i.to_string()
                    };
                    Ok(Val {
                        lit: Some(Lit::Int(i)),
                        ..Val::new(code, Ty::Int)
                    })
                }
                _ => self.refuse(
                    *p,
                    "number literal other than a plain decimal integer (floats, hex, octal, \
                     characters) is not translated",
                ),
            },
            Expr::Bool(_, b) => Ok(Val::new(b.to_string(), Ty::Bool)),
            Expr::Nil(p) => self.refuse(*p, "nil is not translated"),
            Expr::Pipe(p, pipe) => {
                if !pipe.decl.is_empty() {
                    return self.refuse(*p, "a declaration inside parentheses");
                }
                self.pipeline(pipe, dot)
            }
            Expr::Chain(p, inner, fields) => {
                let base = self.operand(inner, dot)?;
                self.fields(base, fields, *p)
            }
        }
    }

    /// `.Key` / `.Value` of a get/gets item, `.Target` ... of a lookupSRV record.
    fn fields(&mut self, base: Val, fields: &[String], offset: usize) -> R<Val> {
        let base = self.strict(base, offset)?;
        let found = match fields {
            [f] => base.ty.field(f),
            _ => None,
        };
        let Some((field, ty)) = found else {
            let chain: Vec<&str> = fields.iter().map(String::as_str).collect();
            return self.refuse(
                offset,
                format!(
                    "field .{} of a {}: only .Key and .Value of get/gets items and the \
                     fields of lookupSRV records are translated",
                    chain.join("."),
                    base.ty.go()
                ),
            );
        };
        let code = if base.var {
            format!("{}.{field}", base.code)
        } else {
            format!("{}[\"{field}\"]", base.code)
        };
        Ok(Val {
            fallible: base.fallible,
            ..Val::new(code, ty)
        })
    }

    fn strict(&self, v: Val, offset: usize) -> R<Val> {
        if v.strict {
            Ok(v)
        } else {
            self.refuse(
                offset,
                "index's result used where Tera would not fail on an index out of range \
                 (it is translated only where printed or passed to a function)",
            )
        }
    }

    fn lookup(&self, go: &str) -> Option<Var> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|v| v.go == go)
            .cloned()
    }

    fn fresh(&mut self, hint: &str) -> String {
        let mut base: String = hint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
            base.insert_str(0, "v_");
        }
        if RESERVED.contains(&base.as_str()) || functions::find(&base).is_some() {
            base.push('_');
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.names.insert(name.clone());
        name
    }

    // ---- functions ----

    /// One confd function call in Tera: one arm per function (the translation table), so
    /// its length follows the function map's.
    fn call(&mut self, name: &str, offset: usize, args: Vec<Val>) -> R<Val> {
        use Ty::*;
        match name {
            "ls" | "lsdir" => {
                match args.first().and_then(|a| a.lit.as_ref()) {
                    Some(Lit::Str(d)) if literal_dir_ok(d) => {}
                    _ => {
                        return self.refuse(
                            offset,
                            format!(
                                "{name} of a path other than a literal, clean, absolute path \
                                 below `/`: reconfd's Go engine lists `/` as confd does, \
                                 Tera's {name} does not"
                            ),
                        )
                    }
                }
                self.table_func(name, offset, args)
            }
            "reverse" | "sortByLength" | "sortKVByLength" => self.reorder(name, offset, args),
            "len" => match args.as_slice() {
                [a] if a.ty.elem().is_some() => {
                    let a = self.strict(a.clone(), offset)?;
                    Ok(Val {
                        fallible: a.fallible,
                        ..Val::new(format!("({} | length)", a.code), Int)
                    })
                }
                [a] => self.refuse(
                    offset,
                    format!(
                        "len of a {} (Go counts the bytes of a string, Tera its characters)",
                        a.ty.go()
                    ),
                ),
                _ => self.refuse(offset, "len takes one argument"),
            },
            "index" => match args.as_slice() {
                [list, Val {
                    lit: Some(Lit::Int(i)),
                    ..
                }] if list.ty.elem().is_some() && *i >= 0 => {
                    let list = self.strict(list.clone(), offset)?;
                    Ok(Val {
                        fallible: true,
                        strict: false,
                        ..Val::new(
                            format!("{}[{i}]", list.code),
                            list.ty.elem().expect("checked"),
                        )
                    })
                }
                _ => self.refuse(
                    offset,
                    "index other than one non-negative integer literal into a list",
                ),
            },
            "not" => match args.as_slice() {
                [a] => {
                    let a = self.strict(a.clone(), offset)?;
                    Ok(Val {
                        fallible: a.fallible,
                        ..Val::new(format!("(not {})", a.code), Bool)
                    })
                }
                _ => self.refuse(offset, "not takes one argument"),
            },
            "and" | "or" => self.and_or(name, offset, args),
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => self.compare(name, offset, args),
            "printf" => self.printf(offset, args),
            "print" | "println" => self.print(name == "println", offset, args),
            "json" | "jsonArray" | "map" => self.refuse(
                offset,
                format!(
                    "{name}: maps and JSON values (float64 numbers, nested values) print and \
                     compare differently in Go and Tera"
                ),
            ),
            "datetime" => self.refuse(
                offset,
                "datetime is a Go time.Time; Tera's datetime() formats the time differently",
            ),
            "html" | "js" | "urlquery" | "slice" | "call" => {
                self.refuse(offset, format!("Go's {name} has no exact Tera equivalent"))
            }
            _ => self.table_func(name, offset, args),
        }
    }

    /// A call of one of confd's functions, with its signature from the function table.
    fn table_func(&mut self, name: &str, offset: usize, args: Vec<Val>) -> R<Val> {
        let Some(f): Option<&ConfdFunction> = functions::find(name) else {
            return self.refuse(
                offset,
                format!("function {name:?} is not defined in confd (Go cannot parse this)"),
            );
        };
        let Some(ret) = ty_of(f.result) else {
            return self.refuse(
                offset,
                format!(
                    "{name} returns a {}, which is not translated",
                    f.result.name()
                ),
            );
        };
        let mut params: Vec<Param> = Vec::with_capacity(f.params.len() + 1);
        for q in f.params {
            params.push(p(q.name, ty_of(q.ty).unwrap_or(Ty::Mixed)));
        }
        let with_default = f.variadic.is_some() && args.len() > f.params.len();
        if let Some(v) = f.variadic.filter(|_| with_default) {
            params.push(opt(v.name, ty_of(v.ty).unwrap_or(Ty::Mixed)));
        }
        // Errors: the Go function's own (a missing key only without a default), a division
        // by zero, and reconfd's bound on seq.
        let fallible = (f.fallible && !with_default) || matches!(name, "div" | "mod" | "seq");
        let v = self.func(name, offset, args, &params, ret)?;
        Ok(Val {
            fallible: v.fallible || fallible,
            ..v
        })
    }

    /// A call of reconfd function `name` with keyword arguments, checking Go's argument count
    /// and types.
    fn func(
        &mut self,
        name: &str,
        offset: usize,
        args: Vec<Val>,
        params: &[Param],
        ret: Ty,
    ) -> R<Val> {
        if args.len() != params.len() {
            return self.refuse(
                offset,
                format!(
                    "{name} with {} argument(s) (confd's takes {})",
                    args.len(),
                    params.len()
                ),
            );
        }
        let mut kwargs = Vec::with_capacity(args.len());
        let mut v = Val::new(String::new(), ret);
        for (a, param) in args.iter().zip(params) {
            if a.ty != param.ty {
                return self.refuse(
                    offset,
                    format!(
                        "{name}'s argument {} is a {} where Go wants a {}",
                        param.kw,
                        a.ty.go(),
                        param.ty.go()
                    ),
                );
            }
            if !param.checked {
                self.strict(a.clone(), offset)?;
            }
            v.fallible |= a.fallible;
            kwargs.push(format!("{}={}", param.kw, a.code));
        }
        v.code = format!("{name}({})", kwargs.join(", "));
        Ok(v)
    }

    /// `reverse`, `sortByLength`, `sortKVByLength`: confd reorders the list it is given in
    /// place, so a list held in a variable would change too; and confd's `reverse` leaves
    /// `gets` results (memkv.KVPairs) and ints unchanged.
    fn reorder(&mut self, name: &str, offset: usize, args: Vec<Val>) -> R<Val> {
        let ty = match name {
            "reverse" | "sortByLength" => Ty::ListStr,
            _ => Ty::ListKv,
        };
        match args.as_slice() {
            [a] if a.ty == ty && a.var => self.refuse(
                offset,
                format!(
                    "{name} of a variable: confd reorders the variable's list in place, \
                     reconfd does not"
                ),
            ),
            [a] if a.ty != ty && name == "reverse" => self.refuse(
                offset,
                format!(
                    "reverse of a {}: confd reverses only []string and []KVPair, and leaves \
                     gets results and ints unchanged",
                    a.ty.go()
                ),
            ),
            _ => self.func(name, offset, args, &[p("list", ty)], ty),
        }
    }

    fn and_or(&mut self, name: &str, offset: usize, args: Vec<Val>) -> R<Val> {
        if args.is_empty() {
            return self.refuse(offset, format!("{name} without arguments"));
        }
        let scalar = |t: Ty| matches!(t, Ty::Str | Ty::Int | Ty::Bool | Ty::Scalar);
        let mut v = Val::new(String::new(), args[0].ty);
        let mut codes = Vec::new();
        for a in &args {
            let a = self.strict(a.clone(), offset)?;
            if a.ty != v.ty {
                v.ty = if scalar(v.ty) && scalar(a.ty) {
                    Ty::Scalar
                } else {
                    Ty::Mixed
                };
            }
            v.fallible |= a.fallible;
            codes.push(a.code);
        }
        v.code = format!("({})", codes.join(&format!(" {name} ")));
        Ok(v)
    }

    fn compare(&mut self, name: &str, offset: usize, args: Vec<Val>) -> R<Val> {
        let arity_ok = if name == "eq" {
            args.len() >= 2
        } else {
            args.len() == 2
        };
        if !arity_ok {
            return self.refuse(offset, format!("{name} with {} arguments", args.len()));
        }
        let ty = args[0].ty;
        let allowed = match name {
            "eq" | "ne" => matches!(ty, Ty::Str | Ty::Int | Ty::Bool),
            _ => matches!(ty, Ty::Str | Ty::Int),
        };
        if !allowed || args.iter().any(|a| a.ty != ty) {
            let tys: Vec<&str> = args.iter().map(|a| a.ty.go()).collect();
            return self.refuse(
                offset,
                format!(
                    "{name} of {}: only strings, ints (and bools for eq/ne) of one type are \
                     translated",
                    tys.join(", ")
                ),
            );
        }
        // Go evaluates every argument; Tera's `or` stops at the first match.
        if args.iter().skip(2).any(|a| a.fallible) {
            return self.refuse(
                offset,
                "eq with a third argument that may fail: Go evaluates it, Tera might not",
            );
        }
        let mut v = Val::new(String::new(), Ty::Bool);
        for a in &args {
            self.strict(a.clone(), offset)?;
            v.fallible |= a.fallible;
        }
        let op = match name {
            "eq" => "==",
            "ne" => "!=",
            "lt" => "<",
            "le" => "<=",
            "gt" => ">",
            _ => ">=",
        };
        let first = &args[0].code;
        let parts: Vec<String> = args[1..]
            .iter()
            .map(|a| format!("{first} {op} {}", a.code))
            .collect();
        v.code = format!("({})", parts.join(" or "));
        Ok(v)
    }

    fn printf(&mut self, offset: usize, args: Vec<Val>) -> R<Val> {
        let format = match args.first().and_then(|a| a.lit.as_ref()) {
            Some(Lit::Str(f)) => f.clone(),
            _ => return self.refuse(offset, "printf with a format that is not a string literal"),
        };
        let mut rest = args[1..].iter();
        let mut parts: Vec<(String, Ty)> = Vec::new();
        let mut lit = String::new();
        let mut chars = format.chars();
        let mut v = Val::new(String::new(), Ty::Str);
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let verb = match chars.next() {
                Some('%') => {
                    lit.push('%');
                    continue;
                }
                Some(verb @ ('s' | 'd' | 't' | 'v')) => verb,
                Some(other) => {
                    return self.refuse(
                        offset,
                        format!(
                            "printf `%{other}`: only the verbs %s, %d, %v, %t and %% without \
                             flags, width or precision are translated"
                        ),
                    )
                }
                None => return self.refuse(offset, "printf format ending in a lone %"),
            };
            let Some(a) = rest.next() else {
                return self.refuse(
                    offset,
                    format!("printf `%{verb}` without an argument (Go prints %!{verb}(MISSING))"),
                );
            };
            let code = match (verb, a.ty) {
                ('s', Ty::Str) | ('d', Ty::Int) | ('t', Ty::Bool) => Some(a.code.clone()),
                ('v', _) => a.printed(),
                _ => None,
            };
            let Some(code) = code else {
                return self.refuse(
                    offset,
                    format!(
                        "printf `%{verb}` of a {} (Go prints %!{verb}(...) or formats it \
                         differently)",
                        a.ty.go()
                    ),
                );
            };
            let a = self.strict(a.clone(), offset)?;
            v.fallible |= a.fallible;
            if !lit.is_empty() {
                parts.push((tera_str(&std::mem::take(&mut lit)), Ty::Str));
            }
            let ty = if a.ty.elem().is_some() { Ty::Str } else { a.ty };
            parts.push((code, ty));
        }
        if rest.next().is_some() {
            return self.refuse(
                offset,
                "printf with more arguments than verbs (Go appends %!(EXTRA ...))",
            );
        }
        if parts.is_empty() {
            v.lit = Some(Lit::Str(lit.clone()));
        }
        if !lit.is_empty() || parts.is_empty() {
            parts.push((tera_str(&lit), Ty::Str));
        }
        v.code = concat(parts);
        Ok(v)
    }

    /// Go's `print` (fmt.Sprint: a space between operands when neither is a string) and
    /// `println` (fmt.Sprintln: spaces between all operands and a final newline).
    fn print(&mut self, newline: bool, offset: usize, args: Vec<Val>) -> R<Val> {
        let mut parts: Vec<(String, Ty)> = Vec::new();
        let mut v = Val::new(String::new(), Ty::Str);
        let mut prev_is_string: Option<bool> = None;
        for a in &args {
            let a = self.strict(a.clone(), offset)?;
            // Whether a space goes in depends on which operands are strings.
            let is_string = match a.ty {
                Ty::Str => Some(true),
                // Unknown, but it only matters for print between operands.
                Ty::Scalar if !newline && args.len() > 1 => None,
                _ => Some(false),
            };
            let (Some(code), Some(is_string)) = (a.printed(), is_string) else {
                return self.refuse(
                    offset,
                    format!("print of a {}, which Go formats differently", a.ty.go()),
                );
            };
            if let Some(prev) = prev_is_string {
                if newline || (!prev && !is_string) {
                    parts.push(("\" \"".into(), Ty::Str));
                }
            }
            prev_is_string = Some(is_string);
            v.fallible |= a.fallible;
            let ty = if a.ty.elem().is_some() { Ty::Str } else { a.ty };
            parts.push((code, ty));
        }
        if newline {
            parts.push(("\"\\n\"".into(), Ty::Str));
        }
        if parts.is_empty() {
            parts.push(("\"\"".into(), Ty::Str));
        }
        v.code = concat(parts);
        Ok(v)
    }
}

/// Tera operands joined with `~` into a string expression.
fn concat(mut parts: Vec<(String, Ty)>) -> String {
    if let [(code, Ty::Str)] = parts.as_slice() {
        return code.clone();
    }
    // `~` makes a string as soon as one side is one; make sure one is.
    if !parts.iter().any(|(_, t)| *t == Ty::Str) {
        parts.insert(0, ("\"\"".into(), Ty::Str));
    }
    let codes: Vec<String> = parts
        .into_iter()
        .enumerate()
        .map(|(i, (c, _))| match c.strip_prefix("(not ") {
            // Tera rejects a unary operator right after `~`, parentheses or not.
            Some(inner) if i > 0 => format!("(false if {} else true)", &inner[..inner.len() - 1]),
            _ => c,
        })
        .collect();
    format!("({})", codes.join(" ~ "))
}

/// A literal directory for ls/lsdir on which both engines list the same: absolute, not `/`,
/// clean (one trailing `/` allowed).
fn literal_dir_ok(d: &str) -> bool {
    let t = d.strip_suffix('/').unwrap_or(d);
    d.starts_with('/') && t.len() > 1 && gopath::clean(t) == t
}

/// A Tera string literal with exactly the value `s`.
fn tera_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Appends Go text as Tera text: verbatim, except a `{` that could open a Tera tag (`{{`,
/// `{%`, `{#`, or a `{` at the end, where the next tag follows) becomes `{{ "{" }}`.
fn push_text(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        if c == '{' && matches!(bytes.get(i + 1), None | Some(b'{' | b'%' | b'#')) {
            out.push_str("{{ \"{\" }}");
        } else {
            out.push(c);
        }
    }
}

/// The names of variables assigned with `=` anywhere in the tree.
fn collect_assigned(l: &ListNode, out: &mut HashSet<String>) {
    fn pipe(p: &PipeNode, out: &mut HashSet<String>) {
        if p.is_assign {
            out.extend(p.decl.iter().map(|d| d.1.clone()));
        }
    }
    for n in &l.nodes {
        match n {
            Node::Action(a) => pipe(&a.pipe, out),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                pipe(&b.pipe, out);
                collect_assigned(&b.list, out);
                if let Some(e) = &b.else_list {
                    collect_assigned(e, out);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
