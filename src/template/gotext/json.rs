//! Go's `encoding/json` decoding into `interface {}` values, as confd's `json` and
//! `jsonArray` use it: numbers are float64, objects `map[string]interface {}`, arrays
//! `[]interface {}`, and errors worded as Go words them (`invalid character 'n' looking for
//! beginning of object key string`, `unexpected end of JSON input`, `json: cannot unmarshal
//! array into Go value of type map[string]interface {}`).

use std::collections::BTreeMap;
use std::rc::Rc;

use super::value::{Slice, SliceType, Value};

/// What confd's function decodes into.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `map[string]interface {}` (`json`)
    Map,
    /// `[]interface {}` (`jsonArray`)
    Array,
}

/// `json.Unmarshal([]byte(data), &ret)`: the value, or Go's error.
pub(crate) fn unmarshal(data: &str, target: Target) -> Result<Value, String> {
    let mut p = Parser {
        text: data,
        s: data.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.i < p.s.len() {
        return Err(p.bad("after top-level value"));
    }
    match (target, v) {
        (_, Json::Null) => Ok(match target {
            Target::Map => Value::Map(None),
            Target::Array => Value::Slice(Slice::nil(SliceType::Iface)),
        }),
        (Target::Map, Json::Object(m)) => Ok(to_value(Json::Object(m))),
        (Target::Array, Json::Array(a)) => Ok(to_value(Json::Array(a))),
        (t, other) => {
            let what = match other {
                Json::Bool(_) => "bool",
                Json::Number(_) => "number",
                Json::String(_) => "string",
                Json::Array(_) => "array",
                Json::Object(_) => "object",
                Json::Null => "null",
            };
            let into = match t {
                Target::Map => "map[string]interface {}",
                Target::Array => "[]interface {}",
            };
            Err(format!(
                "json: cannot unmarshal {what} into Go value of type {into}"
            ))
        }
    }
}

enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

fn to_value(j: Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => Value::Float(n),
        Json::String(s) => Value::str(s),
        Json::Array(a) => Value::Slice(Slice::new(
            SliceType::Iface,
            a.into_iter().map(to_value).collect(),
        )),
        Json::Object(o) => {
            let mut m = BTreeMap::new();
            for (k, v) in o {
                m.insert(Rc::from(k.as_str()), to_value(v));
            }
            Value::Map(Some(Rc::new(m)))
        }
    }
}

/// Go's `quoteChar`.
fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '"' => "'\"'".into(),
        c => {
            let q = super::fmt::quote(&c.to_string(), false);
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

/// Nesting Go's decoder accepts (it fails with "exceeded max depth" past 10000).
const MAX_DEPTH: usize = 10_000;

struct Parser<'a> {
    text: &'a str,
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    fn cur(&self) -> Option<char> {
        // `i` only ever moves by whole characters.
        self.text.get(self.i..).and_then(|r| r.chars().next())
    }

    fn bad(&self, context: &str) -> String {
        match self.cur() {
            None => "unexpected end of JSON input".into(),
            Some(c) => format!("invalid character {} {context}", quote_char(c)),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err("exceeded max depth".into());
        }
        match self.s.get(self.i) {
            None => Err("unexpected end of JSON input".into()),
            Some(b'{') => {
                self.i += 1;
                self.skip_ws();
                let mut items = Vec::new();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Object(items));
                }
                loop {
                    if self.s.get(self.i) != Some(&b'"') {
                        return Err(self.bad("looking for beginning of object key string"));
                    }
                    let k = self.string()?;
                    self.skip_ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return Err(self.bad("after object key"));
                    }
                    self.i += 1;
                    self.skip_ws();
                    let v = self.value(depth + 1)?;
                    items.retain(|(old, _): &(String, Json)| *old != k);
                    items.push((k, v));
                    self.skip_ws();
                    match self.s.get(self.i) {
                        Some(b',') => {
                            self.i += 1;
                            self.skip_ws();
                        }
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Object(items));
                        }
                        _ => return Err(self.bad("after object key:value pair")),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.skip_ws();
                let mut items = Vec::new();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.s.get(self.i) {
                        Some(b',') => {
                            self.i += 1;
                            self.skip_ws();
                        }
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.bad("after array element")),
                    }
                }
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.bad("looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json, String> {
        for (k, expect) in word.bytes().enumerate() {
            if k == 0 {
                self.i += 1;
                continue;
            }
            match self.s.get(self.i) {
                Some(c) if *c == expect => self.i += 1,
                _ => {
                    return Err(self.bad(&format!(
                        "in literal {word} (expecting {})",
                        quote_char(expect as char)
                    )))
                }
            }
        }
        Ok(v)
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        let digit = |s: &Self| s.s.get(s.i).is_some_and(u8::is_ascii_digit);
        if self.s[self.i] == b'-' {
            self.i += 1;
            if !digit(self) {
                return Err(self.bad("in numeric literal"));
            }
        }
        if self.s[self.i] == b'0' {
            self.i += 1;
        } else {
            while digit(self) {
                self.i += 1;
            }
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digit(self) {
                return Err(self.bad("after decimal point in numeric literal"));
            }
            while digit(self) {
                self.i += 1;
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digit(self) {
                return Err(self.bad("in exponent of numeric literal"));
            }
            while digit(self) {
                self.i += 1;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("0");
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Json::Number(f)),
            _ => Err(format!(
                "json: cannot unmarshal number {text} into Go value of type float64"
            )),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.cur() else {
                return Err("unexpected end of JSON input".into());
            };
            match c {
                '"' => {
                    self.i += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.i += 1;
                    let Some(e) = self.cur() else {
                        return Err("unexpected end of JSON input".into());
                    };
                    self.i += 1;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\x08'),
                        'f' => out.push('\x0c'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.s.get(self.i) == Some(&b'\\')
                                && self.s.get(self.i + 1) == Some(&b'u')
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                    out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                    continue;
                                }
                                self.i = save;
                            }
                            out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                        }
                        _ => {
                            self.i -= e.len_utf8();
                            return Err(self.bad("in string escape code"));
                        }
                    }
                }
                c if (c as u32) < 0x20 => return Err(self.bad("in string literal")),
                c => {
                    out.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            match self.s.get(self.i).and_then(|c| (*c as char).to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.i += 1;
                }
                None => return Err(self.bad("in \\u hexadecimal character escape")),
            }
        }
        Ok(v)
    }
}
