//! The lexer of Go's text/template (as of Go 1.19): the template source becomes a list of
//! items, each with its byte offset and line. The rules follow Go's documented grammar:
//! `{{` / `}}` delimiters, `{{- ` / ` -}}` trim markers that remove ASCII space (space, tab,
//! CR, LF) on that side, comments `/* */` that must touch the delimiters, quoted and raw
//! strings, character constants and numbers (checked for shape only; the parser converts
//! them). A lexical error ends the list with an [`Kind::Error`] item whose text is Go's message.

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    Bool,
    /// A printable ASCII character inside an action (such as `,`) that has no other meaning.
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords (Go prints these as `<word>` in errors).
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Kind {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Dot
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Nil
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

/// One lexical item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub kind: Kind,
    /// Byte offset of the item in the source.
    pub pos: usize,
    /// The item's source text, or the error message for [`Kind::Error`].
    pub val: String,
    /// 1-based line the item starts on.
    pub line: usize,
}

impl std::fmt::Display for Item {
    /// How Go's parser names an item in its messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Eof => f.write_str("EOF"),
            Kind::Error => f.write_str(&self.val),
            k if k.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.len() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", super::fmt::quote(&head, false))
            }
            _ => f.write_str(&super::fmt::quote(&self.val, false)),
        }
    }
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Go's `unicode.IsLetter`, `IsDigit` or `_`.
pub(crate) fn is_alnum(c: char) -> bool {
    // Rust's alphabetic/numeric properties are close to, not exactly, Go's Unicode letter
    // and decimal-digit categories; they agree on every ASCII character.
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

struct Lexer<'s> {
    input: &'s str,
    pos: usize,
    start: usize,
    paren_depth: i32,
    items: Vec<Item>,
    /// Offsets of every newline, for line numbers.
    newlines: Vec<usize>,
}

/// Lexes `input` completely: the items up to and including the final `Eof` or `Error`.
pub(crate) fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        paren_depth: 0,
        items: Vec::new(),
        newlines: input.match_indices('\n').map(|(i, _)| i).collect(),
    };
    let mut state = State::Text;
    loop {
        state = match state {
            State::Text => l.text(),
            State::LeftDelim => l.left_delim(),
            State::Comment => l.comment(),
            State::RightDelim => l.right_delim(),
            State::Inside => l.inside(),
            State::Done => break,
        };
    }
    l.items
}

#[derive(Clone, Copy)]
enum State {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    Inside,
    Done,
}

impl Lexer<'_> {
    fn line_at(&self, pos: usize) -> usize {
        1 + self.newlines.partition_point(|&n| n < pos)
    }

    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn next(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, kind: Kind) {
        self.items.push(Item {
            kind,
            pos: self.start,
            val: self.input[self.start..self.pos].to_owned(),
            line: self.line_at(self.start),
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn error(&mut self, message: String) -> State {
        self.items.push(Item {
            kind: Kind::Error,
            pos: self.start,
            val: message,
            line: self.line_at(self.start),
        });
        State::Done
    }

    fn text(&mut self) -> State {
        if let Some(x) = self.rest().find(LEFT) {
            let delim = self.pos + x;
            let mut end = delim;
            if has_left_trim(&self.input[delim + LEFT.len()..]) {
                end = self.start
                    + self.input[self.start..delim]
                        .trim_end_matches(is_space)
                        .len();
            }
            self.pos = end;
            if self.pos > self.start {
                self.emit(Kind::Text);
            }
            self.pos = delim;
            self.ignore();
            return State::LeftDelim;
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(Kind::Text);
        }
        self.emit(Kind::Eof);
        State::Done
    }

    /// At a right delimiter (with or without trim marker): (is delimiter, trims).
    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if has_right_trim(r) && r[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (r.starts_with(RIGHT), false)
    }

    fn left_delim(&mut self) -> State {
        self.pos += LEFT.len();
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with("/*") {
            self.pos += after;
            self.ignore();
            return State::Comment;
        }
        self.emit(Kind::LeftDelim);
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        State::Inside
    }

    fn comment(&mut self) -> State {
        self.pos += 2;
        let Some(i) = self.rest().find("*/") else {
            return self.error("unclosed comment".into());
        };
        self.pos += i + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            self.pos += self.rest().len() - self.rest().trim_start_matches(is_space).len();
        }
        self.ignore();
        State::Text
    }

    fn right_delim(&mut self) -> State {
        let trim = has_right_trim(self.rest());
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += RIGHT.len();
        self.emit(Kind::RightDelim);
        if trim {
            self.pos += self.rest().len() - self.rest().trim_start_matches(is_space).len();
            self.ignore();
        }
        State::Text
    }

    fn inside(&mut self) -> State {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return State::RightDelim;
            }
            return self.error("unclosed left paren".into());
        }
        let Some(r) = self.next() else {
            return self.error("unclosed action".into());
        };
        match r {
            _ if is_space(r) => {
                self.pos -= 1;
                return self.space();
            }
            '=' => self.emit(Kind::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".into());
                }
                self.emit(Kind::Declare);
            }
            '|' => self.emit(Kind::Pipe),
            '"' => return self.quote(),
            '`' => return self.raw_quote(),
            '$' => return self.variable(),
            '\'' => return self.char_constant(),
            '.' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                return self.field_or_variable(Kind::Field);
            }
            '.' | '+' | '-' | '0'..='9' => {
                self.pos = self.start;
                return self.number();
            }
            _ if is_alnum(r) => {
                self.pos -= r.len_utf8();
                return self.identifier();
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Kind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.error(format!(
                        "unexpected right paren {}",
                        super::fmt::unicode_sharp(')')
                    ));
                }
            }
            _ if r.is_ascii() && !r.is_ascii_control() => self.emit(Kind::Char),
            _ => {
                return self.error(format!(
                    "unrecognized character in action: {}",
                    super::fmt::unicode_sharp(r)
                ))
            }
        }
        State::Inside
    }

    fn space(&mut self) -> State {
        let mut n = 0;
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
            n += 1;
        }
        let before = &self.input[self.pos - 1..];
        if has_right_trim(before) && before[2..].starts_with(RIGHT) {
            self.pos -= 1;
            if n == 1 {
                return State::RightDelim;
            }
        }
        self.emit(Kind::Space);
        State::Inside
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn bad_char(&mut self) -> State {
        let c = self.peek();
        self.error(format!(
            "bad character {}",
            c.map_or_else(|| "U+FFFFFFFF".to_owned(), super::fmt::unicode_sharp)
        ))
    }

    fn identifier(&mut self) -> State {
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        if !self.at_terminator() {
            return self.bad_char();
        }
        let kind = match &self.input[self.start..self.pos] {
            "block" => Kind::Block,
            "break" => Kind::Break,
            "continue" => Kind::Continue,
            "define" => Kind::Define,
            "else" => Kind::Else,
            "end" => Kind::End,
            "if" => Kind::If,
            "range" => Kind::Range,
            "nil" => Kind::Nil,
            "template" => Kind::Template,
            "with" => Kind::With,
            "true" | "false" => Kind::Bool,
            _ => Kind::Identifier,
        };
        self.emit(kind);
        State::Inside
    }

    fn variable(&mut self) -> State {
        if self.at_terminator() {
            self.emit(Kind::Variable);
            return State::Inside;
        }
        self.field_or_variable(Kind::Variable)
    }

    fn field_or_variable(&mut self, kind: Kind) -> State {
        if self.at_terminator() {
            self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
            return State::Inside;
        }
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        if !self.at_terminator() {
            return self.bad_char();
        }
        self.emit(kind);
        State::Inside
    }

    fn char_constant(&mut self) -> State {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    None | Some('\n') => {
                        return self.error("unterminated character constant".into())
                    }
                    _ => {}
                },
                None | Some('\n') => return self.error("unterminated character constant".into()),
                Some('\'') => break,
                _ => {}
            }
        }
        self.emit(Kind::CharConstant);
        State::Inside
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return false;
        }
        true
    }

    fn number(&mut self) -> State {
        if !self.scan_number() {
            let text = super::fmt::quote(&self.input[self.start..self.pos], false);
            return self.error(format!("bad number syntax: {text}"));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let text = super::fmt::quote(&self.input[self.start..self.pos], false);
                return self.error(format!("bad number syntax: {text}"));
            }
            self.emit(Kind::Complex);
        } else {
            self.emit(Kind::Number);
        }
        State::Inside
    }

    fn quote(&mut self) -> State {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    None | Some('\n') => return self.error("unterminated quoted string".into()),
                    _ => {}
                },
                None | Some('\n') => return self.error("unterminated quoted string".into()),
                Some('"') => break,
                _ => {}
            }
        }
        self.emit(Kind::String);
        State::Inside
    }

    fn raw_quote(&mut self) -> State {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                _ => {}
            }
        }
        self.emit(Kind::RawString);
        State::Inside
    }
}
