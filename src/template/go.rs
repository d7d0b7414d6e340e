//! The Go-template engine behind [`super::Template`], for confd's `.tmpl` files: the gotmpl
//! crate (a port of Go's text/template) with confd's function set from `go_funcs`.
//!
//! Two things are added around gotmpl so errors are as useful as Tera's:
//! - Unknown functions, variables out of scope and `{{break}}` outside `{{range}}` are found
//!   when the template is loaded, as Go's parser does (gotmpl would only fail when that code
//!   runs), so `reconfd check` reports them; so are a stray `{{end}}` or `{{else}}` and a
//!   comment not right after `{{` (gotmpl accepts both), through [`golex`].
//! - gotmpl's execution errors carry no position. Before every action, `if`, `range`, `with`
//!   and `{{template}}` the parse tree gets an invisible `{{__reconfd_at OFFSET}}` action that
//!   records where execution is; an error is reported at the last recorded place.

use std::cell::Cell;
use std::sync::Arc;

use gotmpl::parse::{ActionNode, CommandNode, Expr, ListNode, Node, Number, PipeNode, Pos};
use gotmpl::{TemplateError as GoError, Value};

use super::funcs::ViewScope;
use super::go_funcs;
use super::golex;
use crate::store::KvView;

/// The hidden function the position markers call.
const AT: &str = "__reconfd_at";

/// The hidden function every `{{range}}` pipeline ends in: confd is built with Go 1.19, whose
/// `range` cannot iterate over an integer (gotmpl follows Go 1.22, which counts).
const RANGEABLE: &str = "__reconfd_rangeable";

/// Go's built-in template functions (text/template `builtins()`).
const BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

thread_local! {
    /// Byte offset of the last action entered by the render on this thread.
    static LAST_AT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A parsed Go template with confd's functions.
pub(crate) struct GoTemplate {
    template: gotmpl::Template,
    name: String,
    source: Arc<str>,
    /// Whether the body is in the definition map (and so instrumented). gotmpl leaves a
    /// body that is only whitespace and `{{define}}`s out of it; that one is run as parsed.
    body_defined: bool,
}

impl std::fmt::Debug for GoTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoTemplate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl GoTemplate {
    /// Parses `source` under `name` (the file name). Syntax errors and calls of functions
    /// that do not exist fail here, with line and column.
    pub(crate) fn compile(name: &str, source: &str) -> Result<Self, String> {
        let mut template = gotmpl::Template::new(name)
            .funcs(go_funcs::func_map())
            .func(AT, |args: &[Value]| {
                if let Some(Value::Int(at)) = args.first() {
                    LAST_AT.with(|c| c.set(usize::try_from(*at).ok()));
                }
                Ok(Value::String("".into()))
            })
            .func(RANGEABLE, |args: &[Value]| match args.last() {
                Some(Value::Int(n)) => Err(GoError::Exec(format!("range can't iterate over {n}"))),
                Some(v) => Ok(v.clone()),
                None => Ok(Value::Nil),
            })
            .parse(source)
            .map_err(|e| e.to_string())?;
        // What gotmpl accepts and Go's parser does not, above all a stray `{{end}}` (gotmpl
        // would silently drop the rest of the template and install a truncated file).
        golex::text_segments(source).map_err(|e| {
            let (line, col) = line_col(source, e.offset);
            format!("template: {name}:{line}:{col}: {}", e.message)
        })?;
        let body_defined = template.lookup(name).is_some();
        let names: Vec<String> = template
            .templates()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for n in names {
            let Some(tree) = template.lookup(&n).cloned() else {
                continue;
            };
            check_tree(&tree).map_err(|(pos, message)| {
                let (line, col) = line_col(source, pos);
                format!("template: {name}:{line}:{col}: {message}")
            })?;
            template = template.add_parse_tree(&n, instrument(tree));
        }
        Ok(Self {
            template,
            name: name.to_owned(),
            source: source.into(),
            body_defined,
        })
    }

    /// Renders with `.` = nil (as confd does); the store functions read `view`.
    pub(crate) fn render(&self, view: Arc<KvView>) -> Result<String, String> {
        let _scope = ViewScope::enter(view);
        LAST_AT.with(|c| c.set(None));
        go_funcs::forget_types();
        let _forget = scopeguard(go_funcs::forget_types);
        if self.body_defined {
            self.template
                .execute_template_to_string(&self.name, &Value::Nil)
        } else {
            self.template.execute_to_string(&Value::Nil)
        }
        .map_err(|e| self.locate(&e))
    }

    /// `template: NAME:LINE:COL: message`, like Go's execution errors.
    fn locate(&self, err: &GoError) -> String {
        let message = match err {
            GoError::Exec(m) => m.clone(),
            GoError::UndefinedTemplate(t) => format!("template {t:?} not defined"),
            other => other.to_string(),
        };
        match LAST_AT.with(Cell::get) {
            Some(at) => {
                let (line, col) = line_col(&self.source, at);
                format!("template: {}:{line}:{col}: {message}", self.name)
            }
            None => format!("template: {}: {message}", self.name),
        }
    }
}

/// Runs `f` when dropped (also when the render unwinds).
fn scopeguard(f: fn()) -> impl Drop {
    struct Guard(fn());
    impl Drop for Guard {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    Guard(f)
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(source: &str, at: usize) -> (usize, usize) {
    let at = at.min(source.len());
    let before = source.get(..at).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// What Go's parser rejects and gotmpl only finds when (and if) the code runs: calls of
/// functions that do not exist, variables used outside their scope, `{{break}}` and
/// `{{continue}}` outside `{{range}}`. The error is the byte offset and Go's message.
fn check_tree(tree: &ListNode) -> Result<(), (usize, String)> {
    let mut checker = Checker {
        vars: vec!["$".into()],
        range_depth: 0,
    };
    checker.list(&tree.nodes)
}

struct Checker {
    /// Variables in scope, innermost last (Go's `Tree.vars`).
    vars: Vec<String>,
    /// How many `{{range}}` bodies enclose the node being checked.
    range_depth: usize,
}

impl Checker {
    fn list(&mut self, nodes: &[Node]) -> Result<(), (usize, String)> {
        for node in nodes {
            match node {
                Node::List(l) => self.list(&l.nodes)?,
                Node::Action(a) => self.pipe(&a.pipe)?,
                Node::If(b) | Node::With(b) => self.control(b, false)?,
                Node::Range(b) => self.control(b, true)?,
                Node::Template(t) => t.pipe.as_ref().map_or(Ok(()), |p| self.pipe(p))?,
                Node::Define(d) => {
                    // A definition is a template of its own: only `$` is in scope.
                    let mut inner = Checker {
                        vars: vec!["$".into()],
                        range_depth: 0,
                    };
                    inner.list(&d.body.nodes)?;
                }
                Node::Break(p) | Node::Continue(p) if self.range_depth == 0 => {
                    let word = if matches!(node, Node::Break(_)) {
                        "break"
                    } else {
                        "continue"
                    };
                    return Err((p.offset, format!("{{{{{word}}}}} outside {{{{range}}}}")));
                }
                Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
            }
        }
        Ok(())
    }

    /// `if`, `with`, `range`: variables declared in the pipeline or the bodies end at
    /// `{{end}}`; as in Go's parser, the `{{else}}` body still sees the first body's.
    fn control(
        &mut self,
        b: &gotmpl::parse::BranchNode,
        is_range: bool,
    ) -> Result<(), (usize, String)> {
        let mark = self.vars.len();
        self.pipe(&b.pipe)?;
        if is_range {
            self.range_depth += 1;
        }
        let body = self.list(&b.body.nodes);
        if is_range {
            self.range_depth -= 1;
        }
        body?;
        if let Some(e) = &b.else_body {
            self.list(&e.nodes)?;
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn pipe(&mut self, pipe: &PipeNode) -> Result<(), (usize, String)> {
        pipe.commands
            .iter()
            .flat_map(|c| c.args.iter())
            .try_for_each(|e| self.expr(e))?;
        self.vars.extend(pipe.decl.iter().map(|v| dollar(v)));
        Ok(())
    }

    fn expr(&mut self, expr: &Expr) -> Result<(), (usize, String)> {
        match expr {
            Expr::Identifier(pos, name) => {
                if BUILTINS.contains(&name.as_str()) || go_funcs::NAMES.contains(&name.as_str()) {
                    Ok(())
                } else {
                    Err((
                        pos.offset,
                        format!("function {:?} not defined", name.as_str()),
                    ))
                }
            }
            Expr::Variable(pos, name, _) => {
                let name = dollar(name);
                if self.vars.contains(&name) {
                    Ok(())
                } else {
                    Err((pos.offset, format!("undefined variable {name:?}")))
                }
            }
            Expr::Pipe(_, p) => {
                // A parenthesised pipeline's declarations stay in scope, as in Go.
                self.pipe(p)
            }
            Expr::Chain(_, inner, _) => self.expr(inner),
            _ => Ok(()),
        }
    }
}

/// A variable's name with its `$`, however the parser stored it.
fn dollar(name: &str) -> String {
    if name.starts_with('$') {
        name.to_owned()
    } else {
        format!("${name}")
    }
}

/// The tree with a position marker before every node that evaluates something.
fn instrument(list: ListNode) -> ListNode {
    let mut nodes = Vec::with_capacity(list.nodes.len() * 2);
    for node in list.nodes {
        let at = match &node {
            Node::Action(a) => Some(a.pos),
            Node::If(b) | Node::Range(b) | Node::With(b) => Some(b.pos),
            Node::Template(t) => Some(t.pos),
            _ => None,
        };
        if let Some(pos) = at {
            nodes.push(marker(pos));
        }
        nodes.push(match node {
            Node::List(l) => Node::List(instrument(l)),
            Node::If(b) => Node::If(instrument_branch(b)),
            Node::Range(mut b) => {
                let pos = b.pipe.pos;
                b.pipe.commands.push(CommandNode {
                    pos,
                    args: vec![Expr::Identifier(pos, RANGEABLE.into())],
                });
                Node::Range(instrument_branch(b))
            }
            Node::With(b) => Node::With(instrument_branch(b)),
            other => other,
        });
    }
    ListNode {
        pos: list.pos,
        nodes,
    }
}

fn instrument_branch(mut b: gotmpl::parse::BranchNode) -> gotmpl::parse::BranchNode {
    b.body = instrument(b.body);
    b.else_body = b.else_body.map(instrument);
    b
}

/// `{{__reconfd_at OFFSET}}`, which prints nothing.
fn marker(pos: Pos) -> Node {
    let offset = i64::try_from(pos.offset).unwrap_or(i64::MAX);
    Node::Action(ActionNode {
        pos,
        pipe: PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode {
                pos,
                args: vec![
                    Expr::Identifier(pos, AT.into()),
                    Expr::Number(pos, Number::Int(offset)),
                ],
            }],
            is_assign: false,
        },
    })
}
