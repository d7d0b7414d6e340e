//! Execution of parsed Go templates with Go 1.19's semantics: truthiness, variable scopes,
//! `range` over slices and maps (sorted keys), `break`/`continue`, `and`/`or` that stop at
//! the deciding operand, Go's argument checks against each function's Go signature (literal
//! arguments checked by kind: `expected integer; found "two"`), method calls on the values
//! confd hands out, `{{template}}` calls bounded at Go's depth of 100000, and every error
//! worded and located as Go's (`template: NAME:LINE:COL: executing "NAME" at <NODE>: ...`,
//! column counted in bytes from 0).
//!
//! Work is bounded: the render fails with a clear error once its output passes
//! [`Limits::max_output`] bytes or it runs past [`Limits::max_time`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::builtins::{self, Func};
use super::fmt as gofmt;
use super::parse::{BranchNode, CommandNode, Expr, ListNode, Node, PipeNode, TemplateNode};
use super::value::{SliceType, Value};
use crate::template::functions::GoType;

/// Go's `maxExecDepth`.
pub(crate) const MAX_EXEC_DEPTH: usize = 100_000;

/// Bounds on one render.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most bytes a render may produce.
    pub max_output: usize,
    /// Longest a render may run.
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output: 256 << 20,
            max_time: Duration::from_secs(10),
        }
    }
}

/// A parsed program: every template of one file.
#[derive(Debug)]
pub(crate) struct Program {
    /// The file's template name (Go's `ParseName`).
    pub name: String,
    pub trees: BTreeMap<String, ListNode>,
    newlines: Vec<usize>,
}

impl Program {
    pub(crate) fn new(name: String, source: String, trees: BTreeMap<String, ListNode>) -> Self {
        let newlines = source.match_indices('\n').map(|(i, _)| i).collect();
        Program {
            name,
            trees,
            newlines,
        }
    }

    /// Go's `ErrorContext` location: `NAME:LINE:COL`, COL in bytes from 0.
    fn location(&self, pos: usize) -> String {
        let k = self.newlines.partition_point(|&n| n < pos);
        let col = if k == 0 {
            pos
        } else {
            pos - (self.newlines[k - 1] + 1)
        };
        format!("{}:{}:{}", self.name, k + 1, col)
    }
}

/// A failed render: Go's message.
#[derive(Debug, Clone)]
pub(crate) struct ExecError(pub String);

type R<T> = Result<T, ExecError>;

/// Where execution is, for error messages (Go's `state.node`).
#[derive(Clone, Copy)]
enum At<'p> {
    None,
    Node(&'p Node),
    Pipe(&'p PipeNode),
    Cmd(&'p CommandNode),
    Expr(&'p Expr),
}

/// A value with whether its static Go type is `interface {}` (an element of a map or a
/// `[]interface {}`): Go names that type in some errors.
#[derive(Debug, Clone)]
pub(crate) struct Dot {
    pub v: Value,
    pub boxed: bool,
}

impl Dot {
    fn plain(v: Value) -> Self {
        Dot { v, boxed: false }
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// The state of one render (Go's `state`).
pub(crate) struct State<'p> {
    prog: &'p Program,
    /// The template being executed (named in errors).
    tmpl: &'p str,
    pub out: String,
    vars: Vec<(&'p str, Dot)>,
    depth: usize,
    at: At<'p>,
    limits: Limits,
    start: Instant,
    ticks: u32,
}

/// Renders template `name` of `prog` with `.` = nil, as confd does.
pub(crate) fn execute(prog: &Program, name: &str, limits: Limits) -> Result<String, ExecError> {
    let Some((tname, root)) = prog.trees.get_key_value(name) else {
        return Err(ExecError(format!(
            "template: {name}: {} is an incomplete or empty template",
            gofmt::quote(name, false)
        )));
    };
    let mut s = State {
        prog,
        tmpl: tname,
        out: String::new(),
        vars: vec![("$", Dot::plain(Value::Invalid))],
        depth: 0,
        at: At::None,
        limits,
        start: Instant::now(),
        ticks: 0,
    };
    let dot = Dot::plain(Value::Invalid);
    s.walk_list(&dot, root)?;
    Ok(s.out)
}

fn grow<T>(f: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(128 * 1024, 4 * 1024 * 1024, f)
}

impl<'p> State<'p> {
    // ---- errors ----

    pub(crate) fn errorf<T>(&self, msg: impl std::fmt::Display) -> R<T> {
        Err(self.error(msg))
    }

    fn error(&self, msg: impl std::fmt::Display) -> ExecError {
        let name = gofmt::quote(self.tmpl, false);
        let (pos, context) = match self.at {
            At::None => {
                return ExecError(format!("template: {}: {msg}", self.tmpl));
            }
            At::Node(n) => (node_pos(n), n.to_string()),
            At::Pipe(p) => (p.pos, p.to_string()),
            At::Cmd(c) => (c.pos, c.to_string()),
            At::Expr(e) => (e.pos(), e.to_string()),
        };
        ExecError(format!(
            "template: {}: executing {name} at <{context}>: {msg}",
            self.prog.location(pos)
        ))
    }

    fn check_limits(&mut self) -> R<()> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.out.len() > self.limits.max_output {
            return Err(ExecError(format!(
                "template: {}: the output passed reconfd's limit of {} bytes; the render \
                 was stopped",
                self.prog.name, self.limits.max_output
            )));
        }
        if self.ticks.is_multiple_of(1024) && self.start.elapsed() > self.limits.max_time {
            return Err(ExecError(format!(
                "template: {}: the render ran longer than reconfd's limit of {}s and was \
                 stopped",
                self.prog.name,
                self.limits.max_time.as_secs()
            )));
        }
        Ok(())
    }

    // ---- variables ----

    fn push(&mut self, name: &'p str, v: Dot) {
        self.vars.push((name, v));
    }

    fn set_var(&mut self, name: &str, v: Dot) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => self.errorf(format_args!("undefined variable: {name}")),
        }
    }

    fn var_value(&self, name: &str) -> R<Dot> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.errorf(format_args!("undefined variable: {name}")),
        }
    }

    // ---- statements ----

    fn walk_list(&mut self, dot: &Dot, list: &'p ListNode) -> R<Flow> {
        for n in &list.nodes {
            match self.walk(dot, n)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Dot, node: &'p Node) -> R<Flow> {
        self.at = At::Node(node);
        self.check_limits()?;
        match node {
            Node::Text(t) => self.out.push_str(&t.text),
            Node::Action(a) => {
                if !self.print_bare(dot, &a.pipe) {
                    let v = self.eval_pipeline(dot, Some(&a.pipe))?;
                    if a.pipe.decl.is_empty() {
                        self.at = At::Node(node);
                        print_to(&mut self.out, &v.v);
                    }
                }
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
            Node::If(b) => return grow(|| self.walk_if_or_with(false, dot, b)),
            Node::With(b) => return grow(|| self.walk_if_or_with(true, dot, b)),
            Node::Range(b) => return grow(|| self.walk_range(node, dot, b)),
            Node::Template(t) => return grow(|| self.walk_template(dot, t)),
        }
        Ok(Flow::Normal)
    }

    /// Prints the action `{{.}}` or `{{$x}}` straight from dot or the variable, without the
    /// copies of a general evaluation (the usual action inside a `range`); false for any
    /// other pipeline, which the caller evaluates. Neither can fail (the parser has checked
    /// that `$x` is declared; if it were not, the general path reports it). Corpus case
    /// 217 holds what Go prints for them.
    fn print_bare(&mut self, dot: &Dot, pipe: &PipeNode) -> bool {
        let [cmd] = pipe.cmds.as_slice() else {
            return false;
        };
        if !pipe.decl.is_empty() {
            return false;
        }
        let v = match cmd.args.as_slice() {
            [Expr::Dot(_)] => &dot.v,
            [Expr::Variable(_, idents)] if idents.len() == 1 => {
                match self.vars.iter().rev().find(|(n, _)| *n == idents[0]) {
                    Some((_, d)) => &d.v,
                    None => return false,
                }
            }
            _ => return false,
        };
        // A pipeline's nil interface result is no value (see eval_pipeline).
        let v = match v {
            Value::Nil => &Value::Invalid,
            v => v,
        };
        print_to(&mut self.out, v);
        true
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Dot, b: &'p BranchNode) -> R<Flow> {
        let mark = self.vars.len();
        let r = (|| {
            let val = self.eval_pipeline(dot, Some(&b.pipe))?;
            if is_true(&val.v) {
                if with {
                    self.walk_list(&val, &b.list)
                } else {
                    self.walk_list(dot, &b.list)
                }
            } else if let Some(e) = &b.else_list {
                self.walk_list(dot, e)
            } else {
                Ok(Flow::Normal)
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, node: &'p Node, dot: &Dot, r: &'p BranchNode) -> R<Flow> {
        self.at = At::Node(node);
        let mark = self.vars.len();
        let result = self.walk_range_inner(dot, r);
        self.vars.truncate(mark);
        result
    }

    fn one_iteration(&mut self, r: &'p BranchNode, index: Value, elem: Dot) -> R<bool> {
        let mark = self.vars.len();
        if !r.pipe.decl.is_empty() {
            self.vars[mark - 1].1 = elem.clone();
        }
        if r.pipe.decl.len() > 1 {
            self.vars[mark - 2].1 = Dot::plain(index);
        }
        let flow = self.walk_list(&elem, &r.list);
        self.vars.truncate(mark);
        Ok(matches!(flow?, Flow::Break))
    }

    /// Go stops `{{break}}` at the range it is walked in, else list included, while a
    /// `{{continue}}` in the else list goes on to the enclosing range's iteration.
    fn walk_range_inner(&mut self, dot: &Dot, r: &'p BranchNode) -> R<Flow> {
        let val = self.eval_pipeline(dot, Some(&r.pipe))?.v;
        match &val {
            Value::Slice(s) if s.len() > 0 => {
                let boxed = s.ty == SliceType::Iface;
                let mut i = 0;
                while i < s.len() {
                    let elem = Dot { v: s.get(i), boxed };
                    if self.one_iteration(r, Value::int(i as i64), elem)? {
                        break;
                    }
                    i += 1;
                }
                return Ok(Flow::Normal);
            }
            Value::Map(Some(m)) if !m.is_empty() => {
                for (k, v) in m.iter() {
                    let elem = Dot {
                        v: v.clone(),
                        boxed: true,
                    };
                    if self.one_iteration(r, Value::Str(k.clone()), elem)? {
                        break;
                    }
                }
                return Ok(Flow::Normal);
            }
            Value::Slice(_) | Value::Map(_) | Value::Invalid | Value::Nil => {}
            other => {
                // Go reports this at the last node evaluated (the pipeline's), not the range.
                let shown = match other {
                    Value::Srv(_) => gofmt::sprint(std::slice::from_ref(other))
                        .trim_start_matches('&')
                        .to_owned(),
                    _ => gofmt::sprint(std::slice::from_ref(other)),
                };
                return self.errorf(format_args!("range can't iterate over {shown}"));
            }
        }
        if let Some(e) = &r.else_list {
            if let Flow::Continue = self.walk_list(dot, e)? {
                return Ok(Flow::Continue);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_template(&mut self, dot: &Dot, t: &'p TemplateNode) -> R<Flow> {
        let Some((name, root)) = self.prog.trees.get_key_value(&t.name) else {
            return self.errorf(format_args!(
                "template {} not defined",
                gofmt::quote(&t.name, false)
            ));
        };
        if self.depth == MAX_EXEC_DEPTH {
            return self.errorf(format_args!(
                "exceeded maximum template depth ({MAX_EXEC_DEPTH})"
            ));
        }
        let new_dot = self.eval_pipeline(dot, t.pipe.as_ref())?;
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let saved_tmpl = std::mem::replace(&mut self.tmpl, name);
        self.depth += 1;
        let r = self.walk_list(&new_dot, root);
        self.depth -= 1;
        self.tmpl = saved_tmpl;
        self.vars = saved_vars;
        r.map(|_| Flow::Normal)
    }

    // ---- pipelines and commands ----

    /// `None` for the missing final value of Go (`missingVal`).
    pub(crate) fn eval_pipeline(&mut self, dot: &Dot, pipe: Option<&'p PipeNode>) -> R<Dot> {
        let Some(pipe) = pipe else {
            return Ok(Dot::plain(Value::Invalid));
        };
        self.at = At::Pipe(pipe);
        let mut value: Option<Dot> = None;
        for cmd in &pipe.cmds {
            let v = grow(|| self.eval_command(dot, cmd, value.take()))?;
            // An interface value becomes its dynamic value; a nil interface becomes no value.
            value = Some(Dot::plain(match v.v {
                Value::Nil => Value::Invalid,
                other => other,
            }));
        }
        let value = value.unwrap_or(Dot::plain(Value::Invalid));
        for (_, name) in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.push(name, value.clone());
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Expr], has_final: bool) -> R<()> {
        if args.len() > 1 || has_final {
            return self.errorf(format_args!(
                "can't give argument to non-function {}",
                cmd_arg_string(&args[0])
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Dot, cmd: &'p CommandNode, fin: Option<Dot>) -> R<Dot> {
        let first = &cmd.args[0];
        match first {
            Expr::Field(..) => return self.eval_field_node(dot, first, Some(&cmd.args), fin),
            Expr::Chain(..) => return self.eval_chain_node(dot, first, Some(&cmd.args), fin),
            Expr::Identifier(_, name) => {
                return self.eval_function(dot, first, name, At::Cmd(cmd), Some(&cmd.args), fin)
            }
            Expr::Pipe(_, p) => {
                self.not_a_function(&cmd.args, fin.is_some())?;
                return self.eval_pipeline(dot, Some(p));
            }
            Expr::Variable(..) => return self.eval_variable_node(dot, first, Some(&cmd.args), fin),
            _ => {}
        }
        self.at = At::Expr(first);
        self.not_a_function(&cmd.args, fin.is_some())?;
        Ok(match first {
            Expr::Bool(_, b) => Dot::plain(Value::Bool(*b)),
            Expr::Dot(_) => dot.clone(),
            Expr::Nil(_) => return self.errorf("nil is not a command"),
            Expr::Number(..) => Dot::plain(self.ideal_constant(first)?),
            Expr::String(_, _, s) => Dot::plain(Value::str(&**s)),
            _ => return self.errorf(format_args!("can't evaluate command {first}")),
        })
    }

    fn ideal_constant(&mut self, e: &'p Expr) -> R<Value> {
        self.at = At::Expr(e);
        let Expr::Number(_, n) = e else {
            return Ok(Value::Invalid);
        };
        let t = &n.text;
        if let Some((re, im)) = n.complex {
            return Ok(Value::Complex(re, im));
        }
        let is_hex_int = t.len() > 2
            && t.starts_with('0')
            && matches!(t.as_bytes()[1], b'x' | b'X')
            && !t.contains(['p', 'P']);
        let is_rune = t.starts_with('\'');
        if let Some(f) = n.float {
            if !is_hex_int && !is_rune && t.contains(['.', 'e', 'E', 'p', 'P']) {
                return Ok(Value::Float(f));
            }
        }
        if let Some(i) = n.int {
            return Ok(Value::int(i));
        }
        if n.uint.is_some() {
            return self.errorf(format_args!("{t} overflows int"));
        }
        Ok(Value::Invalid)
    }

    fn eval_field_node(
        &mut self,
        dot: &Dot,
        field: &'p Expr,
        args: Option<&'p [Expr]>,
        fin: Option<Dot>,
    ) -> R<Dot> {
        self.at = At::Expr(field);
        let Expr::Field(_, idents) = field else {
            unreachable!("a field node")
        };
        self.eval_field_chain(dot, dot.clone(), field, idents, args, fin)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Dot,
        chain: &'p Expr,
        args: Option<&'p [Expr]>,
        fin: Option<Dot>,
    ) -> R<Dot> {
        self.at = At::Expr(chain);
        let Expr::Chain(_, node, fields) = chain else {
            unreachable!("a chain node")
        };
        if let Expr::Nil(_) = **node {
            return self.errorf(format_args!("indirection through explicit nil in {chain}"));
        }
        let pipe = self.eval_arg_untyped(dot, node)?;
        self.eval_field_chain(dot, pipe, chain, fields, args, fin)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Dot,
        var: &'p Expr,
        args: Option<&'p [Expr]>,
        fin: Option<Dot>,
    ) -> R<Dot> {
        self.at = At::Expr(var);
        let Expr::Variable(_, idents) = var else {
            unreachable!("a variable node")
        };
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            let args = args.unwrap_or(std::slice::from_ref(var));
            self.not_a_function(args, fin.is_some())?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, var, &idents[1..], args, fin)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Dot,
        mut receiver: Dot,
        node: &'p Expr,
        idents: &'p [String],
        args: Option<&'p [Expr]>,
        fin: Option<Dot>,
    ) -> R<Dot> {
        let n = idents.len();
        for ident in &idents[..n - 1] {
            receiver = self.eval_field(dot, ident, node, None, None, receiver)?;
        }
        self.eval_field(dot, &idents[n - 1], node, args, fin, receiver)
    }

    fn eval_field(
        &mut self,
        dot: &Dot,
        name: &'p str,
        node: &'p Expr,
        args: Option<&'p [Expr]>,
        fin: Option<Dot>,
        receiver: Dot,
    ) -> R<Dot> {
        if matches!(receiver.v, Value::Invalid) {
            return Ok(Dot::plain(Value::Invalid));
        }
        let typ = if receiver.boxed {
            "interface {}"
        } else {
            receiver.v.type_name()
        };
        if matches!(receiver.v, Value::Nil) {
            return self.errorf(format_args!("nil pointer evaluating {typ}.{name}"));
        }
        if let Some(method) = builtins::method(&receiver.v, name) {
            return self.eval_call(dot, method, At::Expr(node), name, args, fin);
        }
        let has_args = args.is_some_and(|a| a.len() > 1) || fin.is_some();
        match &receiver.v {
            Value::Kv(_) | Value::Srv(_) | Value::Time(_) => {
                if let Some(field) = builtins::field(&receiver.v, name) {
                    if matches!(receiver.v, Value::Time(_)) {
                        return self.errorf(format_args!(
                            "{name} is an unexported field of struct type {typ}"
                        ));
                    }
                    if has_args {
                        return self.errorf(format_args!(
                            "{name} has arguments but cannot be invoked as function"
                        ));
                    }
                    return Ok(Dot::plain(field));
                }
            }
            Value::Map(m) => {
                if has_args {
                    return self.errorf(format_args!("{name} is not a method but has arguments"));
                }
                return Ok(match m.as_ref().and_then(|m| m.get(name)) {
                    Some(v) => Dot {
                        v: v.clone(),
                        boxed: true,
                    },
                    None => Dot::plain(Value::Invalid),
                });
            }
            _ => {}
        }
        self.errorf(format_args!("can't evaluate field {name} in type {typ}"))
    }

    fn eval_function(
        &mut self,
        dot: &Dot,
        node: &'p Expr,
        name: &'p str,
        cmd: At<'p>,
        args: Option<&'p [Expr]>,
        fin: Option<Dot>,
    ) -> R<Dot> {
        self.at = At::Expr(node);
        let Some(f) = builtins::function(name) else {
            return self.errorf(format_args!(
                "{} is not a defined function",
                gofmt::quote(name, false)
            ));
        };
        self.eval_call(dot, f, cmd, name, args, fin)
    }

    /// Go's `evalCall`: checks the argument count and types against the function's
    /// signature, evaluates the arguments and calls it (as long as Go's, each check in Go's
    /// order so that the first error is Go's).
    fn eval_call(
        &mut self,
        dot: &Dot,
        f: Func,
        node: At<'p>,
        name: &str,
        args: Option<&'p [Expr]>,
        fin: Option<Dot>,
    ) -> R<Dot> {
        let args: &'p [Expr] = match args {
            Some(a) => &a[1..],
            None => &[],
        };
        let sig = f.sig();
        let num_in = args.len() + usize::from(fin.is_some());
        let num_fixed;
        if let Some(_va) = sig.variadic {
            num_fixed = sig.params.len();
            if num_in < num_fixed {
                return self.errorf(format_args!(
                    "wrong number of args for {name}: want at least {} got {}",
                    num_fixed,
                    args.len()
                ));
            }
        } else {
            num_fixed = args.len();
            if num_in != sig.params.len() {
                return self.errorf(format_args!(
                    "wrong number of args for {name}: want {} got {num_in}",
                    sig.params.len()
                ));
            }
        }
        if let Some(n) = sig.bad_results {
            return self.errorf(format_args!(
                "can't call method/function {} with {n} results",
                gofmt::quote(name, false)
            ));
        }
        if let Func::Builtin(b @ (builtins::Builtin::And | builtins::Builtin::Or)) = f {
            let is_or = matches!(b, builtins::Builtin::Or);
            let mut v = Dot::plain(Value::Invalid);
            for a in args {
                v = self.eval_arg(dot, Param::RValue, a)?;
                if is_true(&v.v) == is_or {
                    return Ok(v);
                }
            }
            if let Some(fin) = fin {
                v = self.validate_type(fin, Param::RValue)?;
            }
            return Ok(v);
        }
        let mut argv: Vec<Value> = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < num_fixed && i < args.len() {
            let v = self.eval_arg(dot, sig.params[i], &args[i])?;
            argv.push(v.v);
            i += 1;
        }
        if let Some(va) = sig.variadic {
            while i < args.len() {
                let v = self.eval_arg(dot, va, &args[i])?;
                argv.push(v.v);
                i += 1;
            }
        }
        if let Some(fin) = fin {
            let t = match sig.variadic {
                Some(va) if num_in > num_fixed => va,
                _ => sig.params[num_in - 1],
            };
            let v = self.validate_type(fin, t)?;
            argv.push(v.v);
        }
        match builtins::call(self, f, argv) {
            Ok(v) => Ok(Dot::plain(v)),
            Err(e) => {
                self.at = node;
                self.errorf(format_args!("error calling {name}: {e}"))
            }
        }
    }

    /// `evalArg` with no parameter type (the operand of a chain).
    fn eval_arg_untyped(&mut self, dot: &Dot, n: &'p Expr) -> R<Dot> {
        self.at = At::Expr(n);
        match n {
            Expr::Dot(_) => Ok(dot.clone()),
            Expr::Field(..) => self.eval_field_node(dot, n, None, None),
            Expr::Variable(..) => self.eval_variable_node(dot, n, None, None),
            Expr::Pipe(_, p) => self.eval_pipeline(dot, Some(p)),
            Expr::Identifier(_, name) => self.eval_function(dot, n, name, At::Expr(n), None, None),
            Expr::Chain(..) => self.eval_chain_node(dot, n, None, None),
            _ => self.errorf(format_args!("can't handle {n} for arg of type <nil>")),
        }
    }

    fn eval_arg(&mut self, dot: &Dot, typ: Param, n: &'p Expr) -> R<Dot> {
        self.at = At::Expr(n);
        let v = match n {
            Expr::Dot(_) => Some(dot.clone()),
            Expr::Nil(_) => {
                return match typ.zero() {
                    Some(z) => Ok(Dot::plain(z)),
                    None => self.errorf(format_args!("cannot assign nil to {}", typ.name())),
                }
            }
            Expr::Field(..) => {
                Some(self.eval_field_node(dot, n, Some(std::slice::from_ref(n)), None)?)
            }
            Expr::Variable(..) => Some(self.eval_variable_node(dot, n, None, None)?),
            Expr::Pipe(_, p) => Some(self.eval_pipeline(dot, Some(p))?),
            Expr::Identifier(_, name) => {
                Some(self.eval_function(dot, n, name, At::Expr(n), None, None)?)
            }
            Expr::Chain(..) => Some(self.eval_chain_node(dot, n, None, None)?),
            _ => None,
        };
        if let Some(v) = v {
            return self.validate_type(v, typ);
        }
        let found = |s: &Self, what: &str| -> R<Dot> {
            s.errorf(format_args!("expected {what}; found {n}"))
        };
        match typ {
            Param::Go(GoType::Bool) => match n {
                Expr::Bool(_, b) => Ok(Dot::plain(Value::Bool(*b))),
                _ => found(self, "bool"),
            },
            Param::Go(GoType::Str) => match n {
                Expr::String(_, _, s) => Ok(Dot::plain(Value::str(&**s))),
                _ => found(self, "string"),
            },
            Param::Go(GoType::Int) | Param::Duration => match n {
                Expr::Number(_, num) if num.int.is_some() => {
                    let i = num.int.unwrap_or(0);
                    Ok(Dot::plain(match typ {
                        Param::Duration => Value::Int(i, super::value::IntType::Duration),
                        _ => Value::int(i),
                    }))
                }
                _ => found(self, "integer"),
            },
            Param::Go(GoType::Iface) | Param::RValue => self.eval_empty_interface(dot, n),
            _ => self.errorf(format_args!(
                "can't handle {n} for arg of type {}",
                typ.name()
            )),
        }
    }

    fn eval_empty_interface(&mut self, dot: &Dot, n: &'p Expr) -> R<Dot> {
        self.at = At::Expr(n);
        Ok(Dot::plain(match n {
            Expr::Bool(_, b) => Value::Bool(*b),
            Expr::Dot(_) => return Ok(dot.clone()),
            Expr::Number(..) => self.ideal_constant(n)?,
            Expr::String(_, _, s) => Value::str(&**s),
            Expr::Nil(_) => return self.errorf("evalEmptyInterface: nil (can't happen)"),
            _ => {
                return self.errorf(format_args!(
                    "can't handle assignment of {n} to empty interface argument"
                ))
            }
        }))
    }

    /// Go's `validateType`: `value` as an argument of type `typ`.
    fn validate_type(&mut self, value: Dot, typ: Param) -> R<Dot> {
        if matches!(value.v, Value::Invalid) {
            return match typ.zero() {
                Some(z) => Ok(Dot::plain(z)),
                None => self.errorf(format_args!("invalid value; expected {}", typ.name())),
            };
        }
        if typ.accepts(&value.v) {
            return Ok(match (typ, value.v) {
                (Param::Go(GoType::KvSlice), Value::Slice(s)) => {
                    Dot::plain(Value::Slice(s.retyped(SliceType::Kv)))
                }
                (_, v) => Dot {
                    v,
                    boxed: value.boxed,
                },
            });
        }
        // A nil here is an `interface {}` holding nothing (a JSON null met through range, a
        // variable or dot): Go cannot unwrap it and names the interface type.
        let got = match value.v {
            Value::Nil => "interface {}",
            ref v => v.type_name(),
        };
        self.errorf(format_args!(
            "wrong type for value; expected {}; got {got}",
            typ.name()
        ))
    }
}

/// A parameter type: one of confd's Go types, or a type only Go's built-ins and methods take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    Go(GoType),
    /// `reflect.Value` (Go's built-ins take their operands this way).
    RValue,
    /// `time.Duration`
    Duration,
}

impl Param {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Param::Go(t) => t.name(),
            Param::RValue => "reflect.Value",
            Param::Duration => "time.Duration",
        }
    }

    /// The zero value when the parameter can be nil (Go's `canBeNil`).
    fn zero(self) -> Option<Value> {
        use super::value::Slice;
        Some(match self {
            Param::RValue => Value::Invalid,
            Param::Go(GoType::Iface) => Value::Nil,
            Param::Go(GoType::Map) => Value::Map(None),
            Param::Go(GoType::StrSlice) => Value::Slice(Slice::nil(SliceType::String)),
            Param::Go(GoType::KvSlice) => Value::Slice(Slice::nil(SliceType::Kv)),
            Param::Go(GoType::IntSlice) => Value::Slice(Slice::nil(SliceType::Int)),
            Param::Go(GoType::IfaceSlice) => Value::Slice(Slice::nil(SliceType::Iface)),
            Param::Go(GoType::KvPairs) => Value::Slice(Slice::nil(SliceType::KvPairs)),
            Param::Go(GoType::SrvSlice) => Value::Slice(Slice::nil(SliceType::Srv)),
            _ => return None,
        })
    }

    /// Go's assignability of `v`'s type to this parameter.
    fn accepts(self, v: &Value) -> bool {
        use super::value::IntType;
        match self {
            Param::RValue | Param::Go(GoType::Iface) => true,
            Param::Go(GoType::Str) => matches!(v, Value::Str(_)),
            Param::Go(GoType::Int) => matches!(v, Value::Int(_, IntType::Int)),
            Param::Duration => matches!(v, Value::Int(_, IntType::Duration)),
            Param::Go(GoType::Bool) => matches!(v, Value::Bool(_)),
            Param::Go(GoType::Time) => matches!(v, Value::Time(_)),
            Param::Go(GoType::Map) => matches!(v, Value::Map(_)),
            Param::Go(GoType::Kv) => matches!(v, Value::Kv(_)),
            Param::Go(GoType::StrSlice) => {
                matches!(v, Value::Slice(s) if s.ty == SliceType::String)
            }
            Param::Go(GoType::IntSlice) => matches!(v, Value::Slice(s) if s.ty == SliceType::Int),
            Param::Go(GoType::IfaceSlice) => {
                matches!(v, Value::Slice(s) if s.ty == SliceType::Iface)
            }
            Param::Go(GoType::SrvSlice) => matches!(v, Value::Slice(s) if s.ty == SliceType::Srv),
            Param::Go(GoType::KvSlice | GoType::KvPairs) => {
                matches!(v, Value::Slice(s) if matches!(s.ty, SliceType::Kv | SliceType::KvPairs))
            }
        }
    }
}

/// A function's Go signature.
#[derive(Debug, Clone)]
pub(crate) struct Sig {
    pub params: Vec<Param>,
    pub variadic: Option<Param>,
    /// The number of results when Go refuses to call the function from a template (not one
    /// result, nor a result and an error).
    pub bad_results: Option<usize>,
}

/// Appends `v` as an action prints it.
fn print_to(out: &mut String, v: &Value) {
    match v {
        Value::Invalid => out.push_str("<no value>"),
        // A pointer is printed as what it points to.
        Value::Srv(srv) => {
            let s = gofmt::sprint(&[Value::Srv(srv.clone())]);
            out.push_str(s.trim_start_matches('&'));
        }
        v => gofmt::print_value_to(out, v),
    }
}

/// Go's `truth`, for `if`, `with`, `and`, `or`, `not`.
pub(crate) fn is_true(v: &Value) -> bool {
    match v {
        Value::Invalid | Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(n, _) => *n != 0,
        Value::Float(f) => *f != 0.0,
        Value::Complex(re, im) => *re != 0.0 || *im != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Slice(s) => s.len() > 0,
        Value::Map(m) => m.as_ref().is_some_and(|m| !m.is_empty()),
        Value::Kv(_) | Value::Srv(_) | Value::Time(_) => true,
    }
}

fn node_pos(n: &Node) -> usize {
    match n {
        Node::Text(t) => t.pos,
        Node::Action(a) => a.pos,
        Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
        Node::Template(t) => t.pos,
        Node::Break(p) | Node::Continue(p) => *p,
    }
}

/// How Go prints `args[0]` of a command (a parenthesized pipeline shows its parentheses
/// only inside a command).
fn cmd_arg_string(e: &Expr) -> String {
    e.to_string()
}
