//! The functions a confd template can call: Go's built-ins (`and`, `index`, `printf`, `eq`,
//! ...), confd's function map (signatures from [`crate::template::functions`], behaviour as
//! confd's Go code has it, including the in-place `reverse` and sorts), and the methods of
//! the values confd hands out (`memkv.KVPairs`, `time.Time`, `time.Month`, ...).

use std::collections::BTreeMap;
use std::rc::Rc;

use super::exec::{is_true, Param, Sig, State};
use super::fmt as gofmt;
use super::json;
use super::time::GoTime;
use super::value::{IntType, KvPair, Slice, SliceType, Srv, Value};
use crate::store::gopath;
use crate::template::funcs;
use crate::template::functions::{self, ConfdFunction, GoType};

/// Go's built-in template functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    And,
    Or,
    Call,
    Html,
    Index,
    Slice,
    Js,
    Len,
    Not,
    Print,
    Printf,
    Println,
    Urlquery,
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
    Ne,
}

const BUILTINS: &[(&str, Builtin)] = &[
    ("and", Builtin::And),
    ("or", Builtin::Or),
    ("call", Builtin::Call),
    ("html", Builtin::Html),
    ("index", Builtin::Index),
    ("slice", Builtin::Slice),
    ("js", Builtin::Js),
    ("len", Builtin::Len),
    ("not", Builtin::Not),
    ("print", Builtin::Print),
    ("printf", Builtin::Printf),
    ("println", Builtin::Println),
    ("urlquery", Builtin::Urlquery),
    ("eq", Builtin::Eq),
    ("ge", Builtin::Ge),
    ("gt", Builtin::Gt),
    ("le", Builtin::Le),
    ("lt", Builtin::Lt),
    ("ne", Builtin::Ne),
];

/// A method of a value confd hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    KvLen,
    KvLess,
    KvSwap,
    TimeFormat,
    TimeString,
    TimeUnix,
    TimeUnixNano,
    TimeUnixMilli,
    TimeYear,
    TimeMonth,
    TimeDay,
    TimeHour,
    TimeMinute,
    TimeSecond,
    TimeNanosecond,
    TimeYearDay,
    TimeWeekday,
    TimeUtc,
    TimeLocal,
    TimeIsZero,
    TimeAdd,
    TimeSub,
    TimeBefore,
    TimeAfter,
    TimeEqual,
    TimeZone,
    Stringer,
    DurHours,
    DurMinutes,
    DurSeconds,
    DurMilliseconds,
}

/// Something callable, with what it is called on.
#[derive(Debug, Clone)]
pub(crate) enum Func {
    Builtin(Builtin),
    Confd(&'static ConfdFunction),
    Method(Method, Value),
}

/// Whether `name` is a function a template may call (for the parser).
pub(crate) fn exists(name: &str) -> bool {
    BUILTINS.iter().any(|(n, _)| *n == name) || functions::find(name).is_some()
}

/// The function called `name`; confd's own take precedence over Go's built-ins.
pub(crate) fn function(name: &str) -> Option<Func> {
    if let Some(f) = functions::find(name) {
        return Some(Func::Confd(f));
    }
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| Func::Builtin(*b))
}

/// The method `name` of `v`, if its Go type has one.
pub(crate) fn method(v: &Value, name: &str) -> Option<Func> {
    use Method as M;
    let m = match (v, name) {
        (Value::Slice(s), _) if s.ty == SliceType::KvPairs => match name {
            "Len" => M::KvLen,
            "Less" => M::KvLess,
            "Swap" => M::KvSwap,
            _ => return None,
        },
        (Value::Time(_), _) => match name {
            "Format" => M::TimeFormat,
            "String" => M::TimeString,
            "Unix" => M::TimeUnix,
            "UnixNano" => M::TimeUnixNano,
            "UnixMilli" => M::TimeUnixMilli,
            "Year" => M::TimeYear,
            "Month" => M::TimeMonth,
            "Day" => M::TimeDay,
            "Hour" => M::TimeHour,
            "Minute" => M::TimeMinute,
            "Second" => M::TimeSecond,
            "Nanosecond" => M::TimeNanosecond,
            "YearDay" => M::TimeYearDay,
            "Weekday" => M::TimeWeekday,
            "UTC" => M::TimeUtc,
            "Local" => M::TimeLocal,
            "IsZero" => M::TimeIsZero,
            "Add" => M::TimeAdd,
            "Sub" => M::TimeSub,
            "Before" => M::TimeBefore,
            "After" => M::TimeAfter,
            "Equal" => M::TimeEqual,
            "Zone" => M::TimeZone,
            _ => return None,
        },
        (Value::Int(_, IntType::Month | IntType::Weekday), "String") => M::Stringer,
        (Value::Int(_, IntType::Duration), _) => match name {
            "String" => M::Stringer,
            "Hours" => M::DurHours,
            "Minutes" => M::DurMinutes,
            "Seconds" => M::DurSeconds,
            "Milliseconds" => M::DurMilliseconds,
            _ => return None,
        },
        _ => return None,
    };
    Some(Func::Method(m, v.clone()))
}

/// Field `name` of a struct value (`Some(Invalid)` for an unexported one).
pub(crate) fn field(v: &Value, name: &str) -> Option<Value> {
    match v {
        Value::Kv(kv) => match name {
            "Key" => Some(Value::Str(kv.key.clone())),
            "Value" => Some(Value::Str(kv.value.clone())),
            _ => None,
        },
        Value::Srv(s) => match name {
            "Target" => Some(Value::Str(s.target.clone())),
            "Port" => Some(Value::Int(s.port.into(), IntType::Uint16)),
            "Priority" => Some(Value::Int(s.priority.into(), IntType::Uint16)),
            "Weight" => Some(Value::Int(s.weight.into(), IntType::Uint16)),
            _ => None,
        },
        Value::Time(_) => matches!(name, "wall" | "ext" | "loc").then_some(Value::Invalid),
        _ => None,
    }
}

fn go(t: GoType) -> Param {
    Param::Go(t)
}

impl Func {
    /// The Go signature (parameter types).
    pub(crate) fn sig(&self) -> Sig {
        use Builtin as B;
        let sig = |params: Vec<Param>, variadic: Option<Param>| Sig {
            params,
            variadic,
            bad_results: None,
        };
        let rv = Param::RValue;
        match self {
            Func::Builtin(b) => match b {
                B::And | B::Or | B::Call | B::Index | B::Slice | B::Eq => sig(vec![rv], Some(rv)),
                B::Html | B::Js | B::Urlquery | B::Print | B::Println => {
                    sig(vec![], Some(go(GoType::Iface)))
                }
                B::Printf => sig(vec![go(GoType::Str)], Some(go(GoType::Iface))),
                B::Len | B::Not => sig(vec![rv], None),
                B::Ge | B::Gt | B::Le | B::Lt | B::Ne => sig(vec![rv, rv], None),
            },
            Func::Confd(f) => sig(
                f.params.iter().map(|p| go(p.ty)).collect(),
                f.variadic.map(|p| go(p.ty)),
            ),
            Func::Method(m, _) => {
                use Method as M;
                match m {
                    M::KvLess => sig(vec![go(GoType::Int), go(GoType::Int)], None),
                    M::KvSwap => Sig {
                        bad_results: Some(0),
                        ..sig(vec![go(GoType::Int), go(GoType::Int)], None)
                    },
                    M::TimeZone => Sig {
                        bad_results: Some(2),
                        ..sig(vec![], None)
                    },
                    M::TimeFormat => sig(vec![go(GoType::Str)], None),
                    M::TimeAdd => sig(vec![Param::Duration], None),
                    M::TimeSub | M::TimeBefore | M::TimeAfter | M::TimeEqual => {
                        sig(vec![go(GoType::Time)], None)
                    }
                    _ => sig(vec![], None),
                }
            }
        }
    }
}

type Res = Result<Value, String>;

/// Calls `f` with arguments already checked against its signature.
pub(crate) fn call(s: &mut State<'_>, f: Func, a: Vec<Value>) -> Res {
    match f {
        Func::Builtin(b) => call_builtin(s, b, a),
        Func::Confd(c) => call_confd(c.name, a),
        Func::Method(m, recv) => call_method(m, &recv, &a),
    }
}

// ---- Go's built-ins ----

/// Go's `indirectInterface` (a nil interface is no value).
fn indirect_iface(v: Value) -> Value {
    match v {
        Value::Nil => Value::Invalid,
        v => v,
    }
}

fn call_builtin(_s: &mut State<'_>, b: Builtin, a: Vec<Value>) -> Res {
    use Builtin as B;
    match b {
        B::And | B::Or => unreachable!("and/or are evaluated by the executor"),
        B::Call => match indirect_iface(a[0].clone()) {
            Value::Invalid => Err("call of nil".into()),
            v => Err(format!("non-function of type {}", v.type_name())),
        },
        B::Html => Ok(Value::str(html_escape(&eval_args(&a)))),
        B::Js => Ok(Value::str(js_escape(&eval_args(&a)))),
        B::Urlquery => Ok(Value::str(query_escape(&eval_args(&a)))),
        B::Print => Ok(Value::str(gofmt::sprint(&a))),
        B::Println => Ok(Value::str(gofmt::sprintln(&a))),
        B::Printf => {
            let Value::Str(format) = &a[0] else {
                unreachable!("checked")
            };
            Ok(Value::str(gofmt::sprintf(format, &a[1..])))
        }
        B::Not => Ok(Value::Bool(!is_true(&a[0]))),
        B::Len => match &a[0] {
            Value::Nil => Err("len of nil pointer".into()),
            Value::Invalid => Err("reflect: call of reflect.Value.Type on zero Value".into()),
            Value::Str(s) => Ok(Value::int(s.len() as i64)),
            Value::Slice(s) => Ok(Value::int(s.len() as i64)),
            Value::Map(m) => Ok(Value::int(m.as_ref().map_or(0, |m| m.len()) as i64)),
            Value::Srv(_) => Err("len of type net.SRV".into()),
            v => Err(format!("len of type {}", v.type_name())),
        },
        B::Index => index(a),
        B::Slice => slice(a),
        B::Eq => {
            let arg1 = indirect_iface(a[0].clone());
            if a.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            for arg in &a[1..] {
                if eq(&arg1, &indirect_iface(arg.clone()))? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        B::Ne => {
            let e = eq(&indirect_iface(a[0].clone()), &indirect_iface(a[1].clone()))?;
            Ok(Value::Bool(!e))
        }
        B::Lt => lt(&a[0], &a[1]).map(Value::Bool),
        B::Le => le(&a[0], &a[1]).map(Value::Bool),
        B::Gt => le(&a[0], &a[1]).map(|x| Value::Bool(!x)),
        B::Ge => lt(&a[0], &a[1]).map(|x| Value::Bool(!x)),
    }
}

/// Go's `evalArgs` for the escapers: a lone string as is, else `fmt.Sprint` of the values.
fn eval_args(a: &[Value]) -> String {
    if let [Value::Str(s)] = a {
        return s.to_string();
    }
    let printable: Vec<Value> = a
        .iter()
        .map(|v| match v {
            Value::Invalid | Value::Nil => Value::str("<no value>"),
            v => v.clone(),
        })
        .collect();
    gofmt::sprint(&printable)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if (c as u32) >= 0x80 && !gofmt::is_print(c) => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `indexArg`.
fn index_arg(v: &Value, cap: usize) -> Result<usize, String> {
    let x = match indirect_iface(v.clone()) {
        Value::Int(n, _) => n,
        Value::Invalid => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ))
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(a: Vec<Value>) -> Res {
    let mut item = indirect_iface(a[0].clone());
    if matches!(item, Value::Invalid) {
        return Err("index of untyped nil".into());
    }
    for idx in &a[1..] {
        if matches!(item, Value::Nil) {
            return Err("index of nil pointer".into());
        }
        item = match &item {
            Value::Str(s) => {
                let x = index_arg(idx, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Int(i64::from(*b), IntType::Uint8),
                    // index_arg lets x == len through; reflect's Index then panics.
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            Value::Slice(sl) => {
                let x = index_arg(idx, sl.len())?;
                if x >= sl.len() {
                    return Err("reflect: slice index out of range".into());
                }
                sl.get(x)
            }
            Value::Map(m) => {
                let key = match indirect_iface(idx.clone()) {
                    Value::Str(k) => k,
                    Value::Invalid => {
                        return Err("value is nil; should be of type string".into());
                    }
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ))
                    }
                };
                match m.as_ref().and_then(|m| m.get(&key)) {
                    Some(v) => v.clone(),
                    None => Value::Nil,
                }
            }
            Value::Srv(_) => return Err("can't index item of type net.SRV".into()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(a: Vec<Value>) -> Res {
    let item = indirect_iface(a[0].clone());
    if matches!(item, Value::Invalid) {
        return Err("slice of untyped nil".into());
    }
    let idx = &a[1..];
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let (cap, len) = match &item {
        Value::Str(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            (s.len(), s.len())
        }
        Value::Slice(s) => (s.cap(), s.len()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut ix = [0, len, cap];
    for (i, v) in idx.iter().enumerate() {
        ix[i] = index_arg(v, cap)?;
    }
    if ix[0] > ix[1] {
        return Err(format!("invalid slice index: {} > {}", ix[0], ix[1]));
    }
    match &item {
        Value::Str(s) => match s.get(ix[0]..ix[1]) {
            Some(sub) => Ok(Value::str(sub)),
            None => Err(
                "slice of a string splits a UTF-8 character (reconfd renders text, not bytes)"
                    .into(),
            ),
        },
        Value::Slice(s) => {
            if idx.len() < 3 {
                if ix[1] > cap {
                    return Err(format!("index out of range: {}", ix[1]));
                }
                return Ok(Value::Slice(s.reslice(ix[0], ix[1], cap)));
            }
            if ix[1] > ix[2] {
                return Err(format!("invalid slice index: {} > {}", ix[1], ix[2]));
            }
            Ok(Value::Slice(s.reslice(ix[0], ix[1], ix[2])))
        }
        _ => unreachable!("checked"),
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum BasicKind {
    Invalid,
    Bool,
    Complex,
    Int,
    Float,
    String,
    Uint,
}

fn basic_kind(v: &Value) -> BasicKind {
    match v {
        Value::Bool(_) => BasicKind::Bool,
        Value::Int(_, t) if t.unsigned() => BasicKind::Uint,
        Value::Int(..) => BasicKind::Int,
        Value::Float(_) => BasicKind::Float,
        Value::Complex(..) => BasicKind::Complex,
        Value::Str(_) => BasicKind::String,
        _ => BasicKind::Invalid,
    }
}

fn eq(a: &Value, b: &Value) -> Result<bool, String> {
    let (k1, k2) = (basic_kind(a), basic_kind(b));
    if k1 != k2 {
        return match (a, b) {
            (Value::Int(x, _), Value::Int(y, _)) => Ok(*x == *y),
            _ if matches!(a, Value::Invalid) || matches!(b, Value::Invalid) => Ok(false),
            _ => Err("incompatible types for comparison".into()),
        };
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x, _), Value::Int(y, _)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Complex(a1, b1), Value::Complex(a2, b2)) => a1 == a2 && b1 == b2,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Invalid, Value::Invalid) => true,
        _ => {
            let same_kind = std::mem::discriminant(a) == std::mem::discriminant(b)
                || matches!(a, Value::Invalid)
                || matches!(b, Value::Invalid);
            if !same_kind {
                return Err(format!(
                    "non-comparable types {}: {}, {}: {}",
                    gofmt::sprintf("%s", std::slice::from_ref(a)),
                    a.type_name(),
                    b.type_name(),
                    gofmt::sprint(std::slice::from_ref(b))
                ));
            }
            // Go's isNil: no value counts as nil, and a nil beside a non-nil is just unequal.
            let is_nil = |v: &Value| match v {
                Value::Invalid | Value::Nil | Value::Map(None) => true,
                Value::Slice(s) => s.is_nil(),
                _ => false,
            };
            match (a, b) {
                (Value::Invalid, _) | (_, Value::Invalid) => is_nil(a) == is_nil(b),
                (Value::Slice(x), _) if x.is_nil() => matches!(b, Value::Slice(y) if y.is_nil()),
                (Value::Map(None), _) => matches!(b, Value::Map(None)),
                (_, Value::Slice(y)) if y.is_nil() => false,
                (_, Value::Map(None)) => false,
                (Value::Kv(x), Value::Kv(y)) => x.key == y.key && x.value == y.value,
                (Value::Srv(x), Value::Srv(y)) => Rc::ptr_eq(x, y),
                (Value::Time(x), Value::Time(y)) => {
                    x.secs == y.secs && x.nanos == y.nanos && x.offset == y.offset
                }
                _ => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        gofmt::sprintf("%s", std::slice::from_ref(b)),
                        b.type_name()
                    ))
                }
            }
        }
    })
}

fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let a = indirect_iface(a.clone());
    let b = indirect_iface(b.clone());
    let (k1, k2) = (basic_kind(&a), basic_kind(&b));
    if k1 == BasicKind::Invalid || k2 == BasicKind::Invalid {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return match (&a, &b) {
            (Value::Int(x, t1), Value::Int(y, _)) if !t1.unsigned() => Ok(*x < 0 || x < y),
            (Value::Int(x, _), Value::Int(y, _)) => Ok(*y >= 0 && x < y),
            _ => Err("incompatible types for comparison".into()),
        };
    }
    match (&a, &b) {
        (Value::Bool(_), _) | (Value::Complex(..), _) => Err("invalid type for comparison".into()),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Int(x, _), Value::Int(y, _)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".into()),
    }
}

fn le(a: &Value, b: &Value) -> Result<bool, String> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(&indirect_iface(a.clone()), &indirect_iface(b.clone()))
}

// ---- confd's functions ----

fn s(a: &[Value], i: usize) -> &str {
    match &a[i] {
        Value::Str(s) => s,
        _ => "",
    }
}

fn n(a: &[Value], i: usize) -> i64 {
    match &a[i] {
        Value::Int(n, _) => *n,
        _ => 0,
    }
}

fn view() -> Result<std::sync::Arc<crate::store::KvView>, String> {
    funcs::current_view()
}

fn kv(key: &str, value: &str) -> Value {
    Value::Kv(Rc::new(KvPair {
        key: key.into(),
        value: value.into(),
    }))
}

/// Go's `sort.Sort` on `items` with `less` (Go 1.19's pattern-defeating quicksort, so equal
/// elements end up where Go puts them).
fn go_sort(items: &mut [Value], less: impl Fn(&Value, &Value) -> bool) {
    super::sort::sort(items, &less);
}

/// confd's function map: one arm per function, each a few lines that convert Go's arguments
/// and call the shared implementation. Long because the map is long (about 40 functions);
/// splitting it by family would scatter one table that is read and checked as a whole.
fn call_confd(name: &str, a: Vec<Value>) -> Res {
    Ok(match name {
        "getv" => {
            let view = view()?;
            let key = s(&a, 0);
            match view.get(key) {
                Some(v) => Value::str(v),
                None if a.len() > 1 => a[1].clone(),
                None => return Err(funcs::missing_key(&view, key)),
            }
        }
        "getvs" => {
            let view = view()?;
            let vs = view
                .getvs_borrowed(s(&a, 0))
                .map_err(|_| "syntax error in pattern".to_owned())?;
            Value::strings(vs)
        }
        "get" => {
            let view = view()?;
            let key = s(&a, 0);
            match view.get(key) {
                Some(v) => kv(key, v),
                None => return Err(funcs::missing_key(&view, key)),
            }
        }
        "gets" => {
            let view = view()?;
            let items = view
                .matching(s(&a, 0))
                .map_err(|_| "syntax error in pattern".to_owned())?;
            Value::Slice(Slice::new(
                SliceType::KvPairs,
                items.iter().map(|(k, v)| kv(k, v)).collect(),
            ))
        }
        "ls" => {
            let view = view()?;
            let dir = s(&a, 0);
            if gopath::clean(dir) == "/" {
                // memkv splits "/" into two empty terms: only keys directly under the root.
                let top: Vec<String> = view
                    .ls(dir)
                    .into_iter()
                    .filter(|n| view.get(&format!("/{n}")).is_some())
                    .collect();
                Value::strings(top)
            } else {
                Value::strings(view.ls(dir))
            }
        }
        "lsdir" => {
            let dir = s(&a, 0);
            if gopath::clean(dir) == "/" {
                Value::strings(Vec::<String>::new())
            } else {
                Value::strings(view()?.lsdir(dir))
            }
        }
        "exists" => Value::Bool(view()?.exists(s(&a, 0))),
        "base" => Value::str(gopath::base(s(&a, 0))),
        "dir" => Value::str(gopath::dir(s(&a, 0))),
        "split" => Value::strings(funcs::split(s(&a, 0), s(&a, 1))),
        "join" => {
            let Value::Slice(l) = &a[0] else {
                unreachable!("checked")
            };
            let parts: Vec<String> = l
                .items()
                .iter()
                .map(|v| match v {
                    Value::Str(s) => s.to_string(),
                    _ => String::new(),
                })
                .collect();
            Value::str(parts.join(s(&a, 1)))
        }
        "toUpper" => Value::str(funcs::to_upper(s(&a, 0))),
        "toLower" => Value::str(funcs::to_lower(s(&a, 0))),
        "contains" => Value::Bool(s(&a, 0).contains(s(&a, 1))),
        "replace" => Value::str(funcs::replace(s(&a, 0), s(&a, 1), s(&a, 2), n(&a, 3))),
        "trimSuffix" => Value::str(funcs::trim_suffix(s(&a, 0), s(&a, 1))),
        "json" => json::unmarshal(s(&a, 0), json::Target::Map)?,
        "jsonArray" => json::unmarshal(s(&a, 0), json::Target::Array)?,
        "map" => {
            if !a.len().is_multiple_of(2) {
                return Err("invalid map call".into());
            }
            let mut m = BTreeMap::new();
            for pair in a.chunks(2) {
                let Value::Str(k) = &pair[0] else {
                    return Err("map keys must be strings".into());
                };
                let v = match &pair[1] {
                    Value::Invalid => Value::Nil,
                    v => v.clone(),
                };
                m.insert(k.clone(), v);
            }
            Value::Map(Some(Rc::new(m)))
        }
        "getenv" => {
            let default = if a.len() > 1 { s(&a, 1) } else { "" };
            Value::str(funcs::getenv(s(&a, 0), default))
        }
        "datetime" => Value::Time(Rc::new(GoTime::now())),
        "seq" => {
            let (first, last) = (n(&a, 0), n(&a, 1));
            if last < first {
                Value::Slice(Slice::nil(SliceType::Int))
            } else {
                let items = funcs::seq(first, last)?;
                Value::Slice(Slice::new(
                    SliceType::Int,
                    items.into_iter().map(Value::int).collect(),
                ))
            }
        }
        "atoi" => {
            let text = s(&a, 0);
            match text.parse::<i64>() {
                Ok(v) => Value::int(v),
                Err(e) => {
                    let why = match e.kind() {
                        std::num::IntErrorKind::PosOverflow
                        | std::num::IntErrorKind::NegOverflow => "value out of range",
                        _ => "invalid syntax",
                    };
                    return Err(format!(
                        "strconv.Atoi: parsing {}: {why}",
                        gofmt::quote(text, false)
                    ));
                }
            }
        }
        "add" | "sub" | "mul" | "div" | "mod" => {
            let op = funcs::ARITH
                .iter()
                .find(|(o, _)| *o == name)
                .map(|(_, f)| *f)
                .ok_or("unknown operation")?;
            Value::int(op(n(&a, 0), n(&a, 1))?)
        }
        "base64Encode" => Value::str(funcs::b64_encode(s(&a, 0))),
        "base64Decode" => Value::str(funcs::b64_decode(s(&a, 0))?),
        "parseBool" => match s(&a, 0) {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Value::Bool(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Value::Bool(false),
            other => {
                return Err(format!(
                    "strconv.ParseBool: parsing {}: invalid syntax",
                    gofmt::quote(other, false)
                ))
            }
        },
        "reverse" => {
            // confd switches on []string and []memkv.KVPair only: a memkv.KVPairs (what
            // gets returns), []int or []interface {} comes back unchanged.
            if let Value::Slice(l) = &a[0] {
                if matches!(l.ty, SliceType::String | SliceType::Kv) {
                    l.with_mut(|items| items.reverse());
                }
            }
            a[0].clone()
        }
        "sortByLength" => {
            if let Value::Slice(l) = &a[0] {
                l.with_mut(|items| go_sort(items, |x, y| str_len(x) < str_len(y)));
            }
            a[0].clone()
        }
        "sortKVByLength" => {
            if let Value::Slice(l) = &a[0] {
                l.with_mut(|items| go_sort(items, |x, y| key_len(x) < key_len(y)));
            }
            a[0].clone()
        }
        "lookupIP" => nil_if_empty(funcs::lookup_ip(s(&a, 0), |_| true)),
        "lookupIPV4" => nil_if_empty(funcs::lookup_ip(s(&a, 0), |ip| ip.is_ipv4())),
        "lookupIPV6" => nil_if_empty(funcs::lookup_ip(s(&a, 0), |ip| ip.is_ipv6())),
        "lookupSRV" => {
            let records = funcs::lookup_srv(s(&a, 0), s(&a, 1), s(&a, 2));
            Value::Slice(Slice::new(
                SliceType::Srv,
                records
                    .into_iter()
                    .map(|r| {
                        Value::Srv(Rc::new(Srv {
                            target: r.target.as_str().into(),
                            port: r.port,
                            priority: r.priority,
                            weight: r.weight,
                        }))
                    })
                    .collect(),
            ))
        }
        "fileExists" => Value::Bool(funcs::file_exists(s(&a, 0))),
        other => return Err(format!("function {other:?} is not implemented")),
    })
}

fn nil_if_empty(v: Vec<String>) -> Value {
    if v.is_empty() {
        Value::Slice(Slice::nil(SliceType::String))
    } else {
        Value::strings(v)
    }
}

fn str_len(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len(),
        _ => 0,
    }
}

fn key_len(v: &Value) -> usize {
    match v {
        Value::Kv(kv) => kv.key.len(),
        _ => 0,
    }
}

// ---- methods ----

/// The methods a template may call on the values confd passes (KVPair, time.Time): one arm
/// per method, like the function map.
fn call_method(m: Method, recv: &Value, a: &[Value]) -> Res {
    use Method as M;
    if let Value::Slice(l) = recv {
        return match m {
            M::KvLen => Ok(Value::int(l.len() as i64)),
            M::KvLess => {
                let (i, j) = (n(a, 0), n(a, 1));
                let len = l.len() as i64;
                for x in [i, j] {
                    if x < 0 || x >= len {
                        return Err(format!(
                            "runtime error: index out of range [{x}] with length {len}"
                        ));
                    }
                }
                let key = |x: i64| match l.get(x as usize) {
                    Value::Kv(kv) => kv.key.clone(),
                    _ => Rc::from(""),
                };
                Ok(Value::Bool(key(i) < key(j)))
            }
            _ => Err("no such method".into()),
        };
    }
    if let Value::Int(d, t) = recv {
        return Ok(match m {
            M::Stringer => Value::str(match t {
                IntType::Month => super::time::month_name(*d),
                IntType::Weekday => super::time::weekday_name(*d),
                _ => super::time::duration_string(*d),
            }),
            M::DurHours => Value::Float(*d as f64 / 3.6e12),
            M::DurMinutes => Value::Float(*d as f64 / 6e10),
            M::DurSeconds => Value::Float(*d as f64 / 1e9),
            M::DurMilliseconds => Value::Int(d / 1_000_000, IntType::Int64),
            _ => return Err("no such method".into()),
        });
    }
    let Value::Time(t) = recv else {
        return Err("no such method".into());
    };
    let int = |v: i64| Value::int(v);
    let other = || match a.first() {
        Some(Value::Time(u)) => Some(u.clone()),
        _ => None,
    };
    Ok(match m {
        M::TimeFormat => Value::str(t.format(s(a, 0))),
        M::TimeString => Value::str(t.string()),
        M::TimeUnix => Value::Int(t.secs, IntType::Int64),
        M::TimeUnixNano => Value::Int(t.unix_nano(), IntType::Int64),
        M::TimeUnixMilli => Value::Int(
            t.secs * 1000 + i64::from(t.nanos / 1_000_000),
            IntType::Int64,
        ),
        M::TimeYear => int(t.year()),
        M::TimeMonth => Value::Int(t.month(), IntType::Month),
        M::TimeDay => int(t.day()),
        M::TimeHour => int(t.hour()),
        M::TimeMinute => int(t.minute()),
        M::TimeSecond => int(t.second()),
        M::TimeNanosecond => int(i64::from(t.nanos)),
        M::TimeYearDay => int(t.year_day()),
        M::TimeWeekday => Value::Int(t.weekday(), IntType::Weekday),
        M::TimeUtc => Value::Time(Rc::new(t.utc())),
        M::TimeLocal => Value::Time(Rc::new(t.in_local())),
        M::TimeIsZero => Value::Bool(t.secs == -62_135_596_800 && t.nanos == 0),
        M::TimeAdd => Value::Time(Rc::new(t.add(n(a, 0)))),
        M::TimeSub => {
            let u = other().ok_or("no time")?;
            let d = (i128::from(t.secs) - i128::from(u.secs)) * 1_000_000_000 + i128::from(t.nanos)
                - i128::from(u.nanos);
            let d = d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            Value::Int(d, IntType::Duration)
        }
        M::TimeBefore | M::TimeAfter | M::TimeEqual => {
            let u = other().ok_or("no time")?;
            let (x, y) = ((t.secs, t.nanos), (u.secs, u.nanos));
            Value::Bool(match m {
                M::TimeBefore => x < y,
                M::TimeAfter => x > y,
                _ => x == y,
            })
        }
        _ => return Err("no such method".into()),
    })
}
