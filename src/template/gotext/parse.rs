//! The parser of Go's text/template (Go 1.19, the Go confd is built with): items from
//! [`super::lex`] become parse trees, one per template (the file's body and each
//! `{{define}}` / `{{block}}`). Errors are Go's, word for word, with Go's line
//! (`template: NAME:LINE: ...`): unknown functions, variables used outside their scope,
//! `{{break}}` outside `{{range}}`, a stray `{{end}}` all fail here, when the template is
//! loaded, as they do in confd.
//!
//! Go's parser reads items through a three-item lookahead buffer and reports an error on the
//! line of the last item it read; this parser keeps the same buffer discipline so every
//! message names the same line as Go's.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use super::lex::{Item, Kind};

/// A node of a template body.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(TextNode),
    Action(ActionNode),
    If(Box<BranchNode>),
    Range(Box<BranchNode>),
    With(Box<BranchNode>),
    Template(TemplateNode),
    Break(usize),
    Continue(usize),
}

/// Literal text, after trim markers.
#[derive(Debug, Clone)]
pub(crate) struct TextNode {
    pub pos: usize,
    pub text: Arc<str>,
}

/// `{{pipeline}}`.
#[derive(Debug, Clone)]
pub(crate) struct ActionNode {
    pub pos: usize,
    pub pipe: PipeNode,
}

/// `if`, `range` or `with`.
#[derive(Debug, Clone)]
pub(crate) struct BranchNode {
    /// The pipeline's position (Go reports errors of the whole node there).
    pub pos: usize,
    pub pipe: PipeNode,
    pub list: ListNode,
    pub else_list: Option<ListNode>,
}

/// `{{template "name" pipeline}}` (also what a `{{block}}` leaves in place).
#[derive(Debug, Clone)]
pub(crate) struct TemplateNode {
    pub pos: usize,
    pub name: String,
    pub pipe: Option<PipeNode>,
}

/// A sequence of nodes.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListNode {
    pub nodes: Vec<Node>,
}

/// A pipeline with its optional variable declaration or assignment.
#[derive(Debug, Clone)]
pub(crate) struct PipeNode {
    pub pos: usize,
    pub is_assign: bool,
    /// Declared or assigned variables, with `$`.
    pub decl: Vec<(usize, String)>,
    pub cmds: Vec<CommandNode>,
}

/// One command of a pipeline: a function or method call, or a single operand.
#[derive(Debug, Clone)]
pub(crate) struct CommandNode {
    pub pos: usize,
    pub args: Vec<Expr>,
}

/// A number literal with every Go type that can hold it (Go's ideal constants).
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub uint: Option<u64>,
    pub float: Option<f64>,
    pub complex: Option<(f64, f64)>,
}

/// An operand.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Box<Number>),
    /// Position, source text (with quotes) and value.
    String(usize, Arc<str>, Arc<str>),
    /// A function name.
    Identifier(usize, String),
    /// `.A.B`: field names without dots.
    Field(usize, Vec<String>),
    /// `$x.A.B`: the variable (with `$`) then field names.
    Variable(usize, Vec<String>),
    /// `(pipeline)`.
    Pipe(usize, Box<PipeNode>),
    /// `(pipeline).A.B` and the like: the operand and its field names.
    Chain(usize, Box<Expr>, Vec<String>),
}

impl Expr {
    pub(crate) fn pos(&self) -> usize {
        match self {
            Expr::Dot(p)
            | Expr::Nil(p)
            | Expr::Bool(p, _)
            | Expr::Number(p, _)
            | Expr::String(p, ..)
            | Expr::Identifier(p, _)
            | Expr::Field(p, _)
            | Expr::Variable(p, _)
            | Expr::Pipe(p, _)
            | Expr::Chain(p, ..) => *p,
        }
    }
}

// ---- Go's String() of nodes, which execution errors quote ----

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Dot(_) => f.write_str("."),
            Expr::Nil(_) => f.write_str("nil"),
            Expr::Bool(_, b) => write!(f, "{b}"),
            Expr::Number(_, n) => f.write_str(&n.text),
            Expr::String(_, quoted, _) => f.write_str(quoted),
            Expr::Identifier(_, name) => f.write_str(name),
            Expr::Field(_, idents) => idents.iter().try_for_each(|i| write!(f, ".{i}")),
            Expr::Variable(_, idents) => f.write_str(&idents.join(".")),
            Expr::Pipe(_, p) => write!(f, "{p}"),
            Expr::Chain(_, node, fields) => {
                if let Expr::Pipe(..) = **node {
                    write!(f, "({node})")?;
                } else {
                    write!(f, "{node}")?;
                }
                fields.iter().try_for_each(|i| write!(f, ".{i}"))
            }
        }
    }
}

impl fmt::Display for CommandNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            if let Expr::Pipe(_, p) = a {
                write!(f, "({p})")?;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for PipeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            for (i, (_, v)) in self.decl.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(v)?;
            }
            // Go 1.19 writes `:=` for assignments too.
            f.write_str(" := ")?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ListNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.nodes.iter().try_for_each(|n| write!(f, "{n}"))
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Text(t) => f.write_str(&t.text),
            Node::Action(a) => write!(f, "{{{{{}}}}}", a.pipe),
            Node::If(b) => write_branch(f, "if", b),
            Node::Range(b) => write_branch(f, "range", b),
            Node::With(b) => write_branch(f, "with", b),
            Node::Template(t) => {
                write!(f, "{{{{template {}", super::fmt::quote(&t.name, false))?;
                if let Some(p) = &t.pipe {
                    write!(f, " {p}")?;
                }
                f.write_str("}}")
            }
            Node::Break(_) => f.write_str("{{break}}"),
            Node::Continue(_) => f.write_str("{{continue}}"),
        }
    }
}

fn write_branch(f: &mut fmt::Formatter<'_>, name: &str, b: &BranchNode) -> fmt::Result {
    write!(f, "{{{{{name} {}}}}}{}", b.pipe, b.list)?;
    if let Some(e) = &b.else_list {
        write!(f, "{{{{else}}}}{e}")?;
    }
    f.write_str("{{end}}")
}

// ---- the parser ----

/// The parse trees of one source: the body under the template's own name and every
/// `{{define}}` / `{{block}}`, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trees {
    pub trees: BTreeMap<String, ListNode>,
    /// Where each `{{define}}` and `{{block}}` keyword is, in source order.
    pub defines: Vec<usize>,
}

/// A parse error, worded and located as Go's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// Go's whole message (`template: NAME:LINE: ...`).
    pub message: String,
    /// Byte offset of the last item read (for tools that want a column).
    pub offset: usize,
}

/// Parses `text` as template `name`; `is_func` says which function names exist.
pub(crate) fn parse(
    name: &str,
    text: &str,
    is_func: &dyn Fn(&str) -> bool,
) -> Result<Trees, ParseError> {
    let items = super::lex::lex(text);
    let mut shared = Shared {
        items,
        next_item: 0,
        trees: Trees::default(),
        name,
        is_func,
    };
    let mut t = Tree::new(name.to_owned());
    t.parse_top(&mut shared)?;
    t.add(&mut shared)?;
    Ok(shared.trees)
}

/// What every tree of one parse shares: the item stream and the result.
struct Shared<'a> {
    items: Vec<Item>,
    next_item: usize,
    trees: Trees,
    /// The file's template name (Go's `ParseName`).
    name: &'a str,
    is_func: &'a dyn Fn(&str) -> bool,
}

impl Shared<'_> {
    fn next_item(&mut self) -> Item {
        let item = self
            .items
            .get(self.next_item)
            .or(self.items.last())
            .cloned()
            .unwrap_or(Item {
                kind: Kind::Eof,
                pos: 0,
                val: String::new(),
                line: 1,
            });
        if self.next_item < self.items.len() {
            self.next_item += 1;
        }
        item
    }
}

/// Internal result of `textOrAction`: a node, or the `{{end}}` / `{{else}}` that ends a list.
enum Parsed {
    Node(Node),
    End,
    Else,
}

impl fmt::Display for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parsed::Node(n) => write!(f, "{n}"),
            Parsed::End => f.write_str("{{end}}"),
            Parsed::Else => f.write_str("{{else}}"),
        }
    }
}

type PResult<T> = Result<T, ParseError>;

/// One template being parsed (Go's `parse.Tree`).
struct Tree {
    name: String,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    action_line: usize,
    range_depth: usize,
    root: ListNode,
}

fn empty_item() -> Item {
    Item {
        kind: Kind::Eof,
        pos: 0,
        val: String::new(),
        line: 0,
    }
}

impl Tree {
    fn new(name: String) -> Self {
        Tree {
            name,
            token: [empty_item(), empty_item(), empty_item()],
            peek_count: 0,
            vars: vec!["$".into()],
            action_line: 0,
            range_depth: 0,
            root: ListNode::default(),
        }
    }

    fn next(&mut self, s: &mut Shared<'_>) -> Item {
        if self.peek_count > 0 {
            self.peek_count -= 1;
        } else {
            self.token[0] = s.next_item();
        }
        self.token[self.peek_count].clone()
    }

    fn backup(&mut self) {
        self.peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        self.token[1] = t1;
        self.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.token[1] = t1;
        self.token[2] = t2;
        self.peek_count = 3;
    }

    fn peek(&mut self, s: &mut Shared<'_>) -> Item {
        if self.peek_count > 0 {
            return self.token[self.peek_count - 1].clone();
        }
        self.peek_count = 1;
        self.token[0] = s.next_item();
        self.token[0].clone()
    }

    fn next_non_space(&mut self, s: &mut Shared<'_>) -> Item {
        loop {
            let t = self.next(s);
            if t.kind != Kind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self, s: &mut Shared<'_>) -> Item {
        let t = self.next_non_space(s);
        self.backup();
        t
    }

    fn errorf<T>(&self, s: &Shared<'_>, message: impl fmt::Display) -> PResult<T> {
        Err(ParseError {
            message: format!("template: {}:{}: {message}", s.name, self.token[0].line),
            offset: self.token[0].pos,
        })
    }

    fn expect(&mut self, s: &mut Shared<'_>, kind: Kind, context: &str) -> PResult<Item> {
        let t = self.next_non_space(s);
        if t.kind != kind {
            return self.unexpected(s, &t, context);
        }
        Ok(t)
    }

    fn unexpected<T>(&self, s: &Shared<'_>, token: &Item, context: &str) -> PResult<T> {
        if token.kind == Kind::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at {}:{}", s.name, self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_owned();
                }
            }
            return self.errorf(s, format_args!("{token}{extra}"));
        }
        self.errorf(s, format_args!("unexpected {token} in {context}"))
    }

    /// Adds this tree to the set (Go's `Tree.add`).
    fn add(self, s: &mut Shared<'_>) -> PResult<()> {
        match s.trees.trees.get(&self.name) {
            Some(old) if !is_empty_tree(old) => {
                if !is_empty_tree(&self.root) {
                    return self.errorf(
                        s,
                        format_args!(
                            "template: multiple definition of template {}",
                            super::fmt::quote(&self.name, false)
                        ),
                    );
                }
                Ok(())
            }
            _ => {
                s.trees.trees.insert(self.name.clone(), self.root);
                Ok(())
            }
        }
    }

    fn parse_top(&mut self, s: &mut Shared<'_>) -> PResult<()> {
        self.root = ListNode { nodes: Vec::new() };
        while self.peek(s).kind != Kind::Eof {
            if self.peek(s).kind == Kind::LeftDelim {
                let delim = self.next(s);
                let keyword = self.next_non_space(s);
                if keyword.kind == Kind::Define {
                    s.trees.defines.push(keyword.pos);
                    let nt = Tree::new("definition".into());
                    nt.parse_definition(s)?;
                    continue;
                }
                self.backup2(delim);
            }
            match self.text_or_action(s)? {
                n @ (Parsed::End | Parsed::Else) => {
                    return self.errorf(s, format_args!("unexpected {n}"));
                }
                Parsed::Node(n) => self.root.nodes.push(n),
            }
        }
        Ok(())
    }

    fn parse_definition(mut self, s: &mut Shared<'_>) -> PResult<()> {
        let context = "define clause";
        let name = self.next_non_space(s);
        if name.kind != Kind::String && name.kind != Kind::RawString {
            return self.unexpected(s, &name, context);
        }
        self.name = match unquote(&name.val) {
            Some(n) => n,
            None => return self.errorf(s, "invalid syntax"),
        };
        self.expect(s, Kind::RightDelim, context)?;
        let (list, end) = self.item_list(s)?;
        self.root = list;
        if !matches!(end, Parsed::End) {
            return self.errorf(s, format_args!("unexpected {end} in {context}"));
        }
        self.add(s)
    }

    fn item_list(&mut self, s: &mut Shared<'_>) -> PResult<(ListNode, Parsed)> {
        let mut list = ListNode { nodes: Vec::new() };
        while self.peek_non_space(s).kind != Kind::Eof {
            match self.text_or_action(s)? {
                Parsed::Node(n) => list.nodes.push(n),
                end => return Ok((list, end)),
            }
        }
        self.errorf(s, "unexpected EOF")
    }

    fn text_or_action(&mut self, s: &mut Shared<'_>) -> PResult<Parsed> {
        let token = self.next_non_space(s);
        match token.kind {
            Kind::Text => Ok(Parsed::Node(Node::Text(TextNode {
                pos: token.pos,
                text: token.val.into(),
            }))),
            Kind::LeftDelim => {
                self.action_line = token.line;
                let r = self.action(s);
                self.action_line = 0;
                r
            }
            _ => self.unexpected(s, &token, "input"),
        }
    }

    fn action(&mut self, s: &mut Shared<'_>) -> PResult<Parsed> {
        let token = self.next_non_space(s);
        match token.kind {
            Kind::Block => return self.block_control(s).map(Parsed::Node),
            Kind::Break | Kind::Continue => {
                let t = self.next_non_space(s);
                let is_break = token.kind == Kind::Break;
                let word = if is_break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                if t.kind != Kind::RightDelim {
                    return self.unexpected(s, &t, word);
                }
                if self.range_depth == 0 {
                    return self.errorf(s, format_args!("{word} outside {{{{range}}}}"));
                }
                return Ok(Parsed::Node(if is_break {
                    Node::Break(token.pos)
                } else {
                    Node::Continue(token.pos)
                }));
            }
            Kind::Else => {
                let peek = self.peek_non_space(s);
                if peek.kind == Kind::If {
                    return Ok(Parsed::Else);
                }
                self.expect(s, Kind::RightDelim, "else")?;
                return Ok(Parsed::Else);
            }
            Kind::End => {
                self.expect(s, Kind::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            Kind::If => {
                let b = self.parse_control(s, true, "if")?;
                return Ok(Parsed::Node(Node::If(Box::new(b))));
            }
            Kind::Range => {
                let b = self.parse_control(s, false, "range")?;
                return Ok(Parsed::Node(Node::Range(Box::new(b))));
            }
            Kind::With => {
                let b = self.parse_control(s, false, "with")?;
                return Ok(Parsed::Node(Node::With(Box::new(b))));
            }
            Kind::Template => return self.template_control(s).map(Parsed::Node),
            _ => {}
        }
        self.backup();
        let token = self.peek(s);
        let pipe = self.pipeline(s, "command", Kind::RightDelim)?;
        Ok(Parsed::Node(Node::Action(ActionNode {
            pos: token.pos,
            pipe,
        })))
    }

    fn pipeline(&mut self, s: &mut Shared<'_>, context: &str, end: Kind) -> PResult<PipeNode> {
        let token = self.peek_non_space(s);
        let mut pipe = PipeNode {
            pos: token.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space(s);
            if v.kind != Kind::Variable {
                break 'decls;
            }
            self.next(s);
            let after_var = self.peek(s);
            let next = self.peek_non_space(s);
            if next.kind == Kind::Assign || next.kind == Kind::Declare {
                pipe.is_assign = next.kind == Kind::Assign;
                self.next_non_space(s);
                pipe.decl.push((v.pos, v.val.clone()));
                self.vars.push(v.val);
            } else if next.kind == Kind::Char && next.val == "," {
                self.next_non_space(s);
                pipe.decl.push((v.pos, v.val.clone()));
                self.vars.push(v.val);
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space(s).kind {
                        Kind::Variable | Kind::RightDelim | Kind::RightParen => continue 'decls,
                        _ => return self.errorf(s, "range can only initialize variables"),
                    }
                }
                return self.errorf(s, format_args!("too many declarations in {context}"));
            } else if after_var.kind == Kind::Space {
                self.backup3(v, after_var);
            } else {
                self.backup2(v);
            }
            break 'decls;
        }
        loop {
            let token = self.next_non_space(s);
            match token.kind {
                k if k == end => {
                    self.check_pipeline(s, &pipe, context)?;
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::CharConstant
                | Kind::Complex
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command(s)?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(s, &token, context),
            }
        }
    }

    fn check_pipeline(&self, s: &Shared<'_>, pipe: &PipeNode, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(s, format_args!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Expr::Bool(..)
                        | Expr::Dot(_)
                        | Expr::Nil(_)
                        | Expr::Number(..)
                        | Expr::String(..)
                )
            ) {
                return self.errorf(
                    s,
                    format_args!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(())
    }

    fn parse_control(
        &mut self,
        s: &mut Shared<'_>,
        allow_else_if: bool,
        context: &str,
    ) -> PResult<BranchNode> {
        let mark = self.vars.len();
        let r = self.parse_control_inner(s, allow_else_if, context);
        self.vars.truncate(mark);
        r
    }

    fn parse_control_inner(
        &mut self,
        s: &mut Shared<'_>,
        allow_else_if: bool,
        context: &str,
    ) -> PResult<BranchNode> {
        let pipe = self.pipeline(s, context, Kind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let r = self.item_list(s);
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = r?;
        let mut else_list = None;
        if let Parsed::Else = next {
            if allow_else_if && self.peek(s).kind == Kind::If {
                self.next(s);
                let inner = self.parse_control(s, true, "if")?;
                else_list = Some(ListNode {
                    nodes: vec![Node::If(Box::new(inner))],
                });
            } else {
                let (el, next) = self.item_list(s)?;
                if !matches!(next, Parsed::End) {
                    return self.errorf(s, format_args!("expected end; found {next}"));
                }
                else_list = Some(el);
            }
        }
        Ok(BranchNode {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(
        &mut self,
        s: &mut Shared<'_>,
        token: &Item,
        context: &str,
    ) -> PResult<String> {
        match token.kind {
            Kind::String | Kind::RawString => match unquote(&token.val) {
                Some(n) => Ok(n),
                None => self.errorf(s, "invalid syntax"),
            },
            _ => self.unexpected(s, token, context),
        }
    }

    fn block_control(&mut self, s: &mut Shared<'_>) -> PResult<Node> {
        let context = "block clause";
        if let Some(keyword) = self.token.iter().find(|t| t.kind == Kind::Block) {
            s.trees.defines.push(keyword.pos);
        }
        let token = self.next_non_space(s);
        let name = self.template_name(s, &token, context)?;
        let pipe = self.pipeline(s, context, Kind::RightDelim)?;
        let mut block = Tree::new(name.clone());
        let (list, end) = block.item_list(s)?;
        block.root = list;
        if !matches!(end, Parsed::End) {
            return self.errorf(s, format_args!("unexpected {end} in {context}"));
        }
        block.add(s)?;
        Ok(Node::Template(TemplateNode {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        }))
    }

    fn template_control(&mut self, s: &mut Shared<'_>) -> PResult<Node> {
        let context = "template clause";
        let token = self.next_non_space(s);
        let name = self.template_name(s, &token, context)?;
        let mut pipe = None;
        if self.next_non_space(s).kind != Kind::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(s, context, Kind::RightDelim)?);
        }
        Ok(Node::Template(TemplateNode {
            pos: token.pos,
            name,
            pipe,
        }))
    }

    fn command(&mut self, s: &mut Shared<'_>) -> PResult<CommandNode> {
        let mut cmd = CommandNode {
            pos: self.peek_non_space(s).pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space(s);
            if let Some(op) = self.operand(s)? {
                cmd.args.push(op);
            }
            let token = self.next(s);
            match token.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(s, &token, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf(s, "empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self, s: &mut Shared<'_>) -> PResult<Option<Expr>> {
        let Some(node) = self.term(s)? else {
            return Ok(None);
        };
        if self.peek(s).kind != Kind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek(s).pos;
        let mut fields = Vec::new();
        while self.peek(s).kind == Kind::Field {
            let f = self.next(s);
            fields.push(f.val[1..].to_owned());
        }
        Ok(Some(match node {
            Expr::Field(_, mut idents) => {
                idents.extend(fields);
                Expr::Field(chain_pos, idents)
            }
            Expr::Variable(_, mut idents) => {
                idents.extend(fields);
                Expr::Variable(chain_pos, idents)
            }
            Expr::Bool(..) | Expr::String(..) | Expr::Number(..) | Expr::Nil(_) | Expr::Dot(_) => {
                return self.errorf(
                    s,
                    format_args!(
                        "unexpected . after term {}",
                        super::fmt::quote(&node.to_string(), false)
                    ),
                );
            }
            other => Expr::Chain(chain_pos, Box::new(other), fields),
        }))
    }

    fn term(&mut self, s: &mut Shared<'_>) -> PResult<Option<Expr>> {
        let token = self.next_non_space(s);
        Ok(Some(match token.kind {
            Kind::Identifier => {
                if !(s.is_func)(&token.val) {
                    return self.errorf(
                        s,
                        format_args!(
                            "function {} not defined",
                            super::fmt::quote(&token.val, false)
                        ),
                    );
                }
                Expr::Identifier(token.pos, token.val)
            }
            Kind::Dot => Expr::Dot(token.pos),
            Kind::Nil => Expr::Nil(token.pos),
            Kind::Variable => {
                if !self.vars.contains(&token.val) {
                    return self.errorf(
                        s,
                        format_args!(
                            "undefined variable {}",
                            super::fmt::quote(&token.val, false)
                        ),
                    );
                }
                Expr::Variable(token.pos, vec![token.val])
            }
            Kind::Field => Expr::Field(token.pos, vec![token.val[1..].to_owned()]),
            Kind::Bool => Expr::Bool(token.pos, token.val == "true"),
            Kind::CharConstant | Kind::Complex | Kind::Number => {
                match new_number(&token.val, token.kind) {
                    Ok(n) => Expr::Number(token.pos, Box::new(n)),
                    Err(e) => return self.errorf(s, e),
                }
            }
            Kind::LeftParen => {
                let p = self.pipeline(s, "parenthesized pipeline", Kind::RightParen)?;
                Expr::Pipe(p.pos, Box::new(p))
            }
            Kind::String | Kind::RawString => match unquote(&token.val) {
                Some(v) => Expr::String(token.pos, token.val.into(), v.into()),
                None => return self.errorf(s, "invalid syntax"),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// Go's `parse.IsEmptyTree`: only whitespace text.
fn is_empty_tree(l: &ListNode) -> bool {
    l.nodes.iter().all(|n| match n {
        Node::Text(t) => t.text.trim_matches(|c: char| c.is_whitespace()).is_empty(),
        _ => false,
    })
}

// ---- literals ----

/// `strconv.Unquote` of a quoted (`"..."`) or raw (`` `...` ``) string. `None` is Go's
/// "invalid syntax" (including escapes whose value is not UTF-8 text, which reconfd cannot
/// carry).
pub(crate) fn unquote(s: &str) -> Option<String> {
    if let Some(raw) = s.strip_prefix('`') {
        let body = raw.strip_suffix('`')?;
        if body.contains('`') {
            return None;
        }
        return Some(body.replace('\r', ""));
    }
    let body = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut bytes = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\n' => return None,
            '\\' => unescape(&mut chars, &mut bytes, '"')?,
            c => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    String::from_utf8(bytes).ok()
}

/// One escape (after the backslash) of a Go quoted string or character constant.
fn unescape(chars: &mut std::str::Chars<'_>, out: &mut Vec<u8>, quote: char) -> Option<()> {
    let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + chars.next()?.to_digit(16)?;
        }
        Some(v)
    };
    let push =
        |out: &mut Vec<u8>, c: char| out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    match chars.next()? {
        'a' => out.push(0x07),
        'b' => out.push(0x08),
        'f' => out.push(0x0c),
        'n' => out.push(b'\n'),
        'r' => out.push(b'\r'),
        't' => out.push(b'\t'),
        'v' => out.push(0x0b),
        '\\' => out.push(b'\\'),
        c if c == quote => out.push(c as u8),
        'x' => out.push(u8::try_from(hex(chars, 2)?).ok()?),
        'u' => push(out, char::from_u32(hex(chars, 4)?)?),
        'U' => push(out, char::from_u32(hex(chars, 8)?)?),
        d @ '0'..='7' => {
            let mut v = d.to_digit(8)?;
            for _ in 0..2 {
                v = v * 8 + chars.next()?.to_digit(8)?;
            }
            out.push(u8::try_from(v).ok()?);
        }
        _ => return None,
    }
    Some(())
}

/// The value of a character constant (`'a'`, `'\n'`, `'\x41'`).
fn char_constant(text: &str) -> Result<i64, String> {
    let body = &text[1..];
    let mut chars = body.chars();
    let c = chars.next().ok_or("invalid syntax")?;
    let value = match c {
        '\\' => {
            let mut bytes = Vec::new();
            let before = chars.clone();
            unescape(&mut chars, &mut bytes, '\'').ok_or("invalid syntax")?;
            let consumed = before.as_str().len() - chars.as_str().len();
            let esc = &before.as_str()[..consumed];
            if esc.starts_with('x') || esc.starts_with(|c: char| c.is_ascii_digit()) {
                i64::from(bytes[0])
            } else {
                let s = String::from_utf8(bytes).map_err(|_| "invalid syntax")?;
                s.chars().next().map_or(0, |c| c as i64)
            }
        }
        '\'' => return Err("invalid syntax".into()),
        c => c as i64,
    };
    if chars.as_str() != "'" {
        return Err(format!("malformed character constant: {text}"));
    }
    Ok(value)
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let mut saw = b'^';
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
        hex = b[1] | 0x20 == b'x';
        saw = b'0';
        b = &b[2..];
    }
    for &c in b {
        if c.is_ascii_digit() || hex && (c | 0x20).is_ascii_hexdigit() {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

/// `strconv.ParseUint(s, 0, 64)` / `ParseInt(s, 0, 64)` digits: magnitude and sign.
fn parse_integer(s: &str, signed: bool) -> Option<(bool, u64)> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') if signed => (false, &s[1..]),
        Some(b'-') if signed => (true, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (base, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if digits.contains('_') && !underscore_ok(body) {
        return None;
    }
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() && !(prefixed && base == 8) {
        return None;
    }
    let mut v: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(base)?;
        v = v.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some((neg, v))
}

/// `strconv.ParseFloat(s, 64)` for the shapes the lexer produces; `None` on syntax errors and
/// out-of-range values.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'+') => (false, &clean[1..]),
        Some(b'-') => (true, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let lower = body.to_ascii_lowercase();
    let v = if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else {
        if lower.starts_with(|c: char| c.is_ascii_alphabetic())
            || lower.contains("inf")
            || lower.contains("nan")
        {
            return None;
        }
        lower.parse::<f64>().ok()?
    };
    if v.is_infinite() {
        return None;
    }
    Some(if neg { -v } else { v })
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = s.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// Go's `newNumber`: every interpretation of a number literal, step for step as Go's (its
/// length is Go's).
fn new_number(text: &str, kind: Kind) -> Result<Number, String> {
    let mut n = Number {
        text: text.to_owned(),
        int: None,
        uint: None,
        float: None,
        complex: None,
    };
    match kind {
        Kind::CharConstant => {
            let r = char_constant(text)?;
            n.int = Some(r);
            n.uint = Some(r as u64);
            n.float = Some(r as f64);
            return Ok(n);
        }
        Kind::Complex => {
            let split = text
                .char_indices()
                .skip(1)
                .filter(|(i, c)| {
                    matches!(c, '+' | '-') && !matches!(text.as_bytes()[i - 1] | 0x20, b'e' | b'p')
                })
                .last()
                .map(|(i, _)| i)
                .ok_or("expected integer")?;
            let re = parse_float(&text[..split]).ok_or("expected integer")?;
            let im = parse_float(&text[split..text.len() - 1]).ok_or("expected integer")?;
            n.complex = Some((re, im));
            simplify_complex(&mut n);
            return Ok(n);
        }
        _ => {}
    }
    if let Some(im) = text.strip_suffix('i') {
        if let Some(f) = parse_float(im) {
            n.complex = Some((0.0, f));
            simplify_complex(&mut n);
            return Ok(n);
        }
    }
    let u = parse_integer(text, false)
        .filter(|(neg, _)| !neg)
        .map(|(_, v)| v);
    n.uint = u;
    if let Some((neg, mag)) = parse_integer(text, true) {
        let i = if neg {
            if mag <= 1 << 63 {
                Some((mag as i64).wrapping_neg())
            } else {
                None
            }
        } else {
            i64::try_from(mag).ok()
        };
        if let Some(i) = i {
            n.int = Some(i);
            if i == 0 {
                n.uint = Some(u.unwrap_or(0));
            }
        }
    }
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = n.uint {
        n.float = Some(u as f64);
    } else if let Some(f) = parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!(
                "integer overflow: {}",
                super::fmt::quote(text, false)
            ));
        }
        n.float = Some(f);
        if n.int.is_none() && (f as i64) as f64 == f && f.abs() < 9.3e18 {
            n.int = Some(f as i64);
        }
        if n.uint.is_none() && (f as u64) as f64 == f && (0.0..1.8e19).contains(&f) {
            n.uint = Some(f as u64);
        }
    }
    if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
        return Err(format!(
            "illegal number syntax: {}",
            super::fmt::quote(text, false)
        ));
    }
    Ok(n)
}

fn simplify_complex(n: &mut Number) {
    let Some((re, im)) = n.complex else { return };
    if im == 0.0 {
        n.float = Some(re);
        if (re as i64) as f64 == re && re.abs() < 9.3e18 {
            n.int = Some(re as i64);
        }
        if re >= 0.0 && (re as u64) as f64 == re && re < 1.8e19 {
            n.uint = Some(re as u64);
        }
    }
}
