//! confd's function set for Go templates: positional arguments in confd's order, checked the
//! way Go's text/template checks them (`wrong number of args for getv: want at least 1 got
//! 0`, `wrong type for value; expected string; got int`), errors reported as `error calling
//! NAME: ...`. The work is done by [`super::funcs`] and the [`KvView`] store functions, the same
//! code the Tera functions call.
//!
//! Values take confd's Go shapes: `get`/`gets` items are maps with `Key` and `Value`,
//! `lookupSRV` items have `Target`, `Port`, `Priority` and `Weight`, and `json` numbers are
//! float64 (Go's encoding/json).

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{FuncMap, TemplateError, Value};

use super::funcs;
use crate::store::{gopath, KvView};

type GoResult = Result<Value, TemplateError>;

/// Every function this module registers, for the load-time check of function names.
pub(crate) const NAMES: &[&str] = &[
    "getv",
    "getvs",
    "get",
    "gets",
    "ls",
    "lsdir",
    "exists",
    "base",
    "dir",
    "split",
    "join",
    "toUpper",
    "toLower",
    "contains",
    "replace",
    "trimSuffix",
    "json",
    "jsonArray",
    "map",
    "getenv",
    "datetime",
    "seq",
    "atoi",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "base64Encode",
    "base64Decode",
    "parseBool",
    "reverse",
    "sortByLength",
    "sortKVByLength",
    "lookupIP",
    "lookupIPV4",
    "lookupIPV6",
    "lookupSRV",
    "fileExists",
];

/// confd's functions, ready for `gotmpl::Template::funcs`.
pub(crate) fn func_map() -> FuncMap {
    let mut m = FuncMap::new();
    let mut add = |name: &'static str, f: fn(&[Value]) -> GoResult| {
        m.insert(name.to_owned(), Arc::new(f));
    };

    // Store functions (memkv).
    add("getv", |a| {
        at_least("getv", a, 1)?;
        let key = string(a, 0)?;
        let default = if a.len() > 1 {
            Some(string(a, 1)?)
        } else {
            None
        };
        call("getv", funcs::getv(&*view()?, key, default)).map(s)
    });
    add("getvs", |a| {
        exactly("getvs", a, 1)?;
        let pattern = string(a, 0)?;
        call("getvs", view()?.getvs(pattern).map_err(|e| e.to_string())).map(strings)
    });
    add("get", |a| {
        exactly("get", a, 1)?;
        let key = string(a, 0)?;
        let view = view()?;
        match view.get(key) {
            Some(v) => Ok(kv_pair(key, v)),
            None => call("get", Err(funcs::missing_key(&view, key))),
        }
    });
    add("gets", |a| {
        exactly("gets", a, 1)?;
        let items = call(
            "gets",
            view()?.gets(string(a, 0)?).map_err(|e| e.to_string()),
        )?;
        Ok(list(items.iter().map(|(k, v)| kv_pair(k, v))))
    });
    add("ls", |a| {
        exactly("ls", a, 1)?;
        let dir = string(a, 0)?;
        let view = view()?;
        if gopath::clean(dir) == "/" {
            // memkv splits "/" into two empty terms, so only keys directly under the root
            // match; confd templates see exactly that.
            let top = view
                .ls(dir)
                .into_iter()
                .filter(|n| view.get(&format!("/{n}")).is_some());
            return Ok(strings(top.collect()));
        }
        Ok(strings(view.ls(dir)))
    });
    add("lsdir", |a| {
        exactly("lsdir", a, 1)?;
        let dir = string(a, 0)?;
        if gopath::clean(dir) == "/" {
            // The same memkv quirk: nothing ever matches below "/".
            return Ok(strings(Vec::<String>::new()));
        }
        Ok(strings(view()?.lsdir(dir)))
    });
    add("exists", |a| {
        exactly("exists", a, 1)?;
        Ok(Value::Bool(view()?.exists(string(a, 0)?)))
    });

    // Strings and paths.
    add("base", |a| one_str("base", a, |x| s(gopath::base(x))));
    add("dir", |a| one_str("dir", a, |x| s(gopath::dir(x))));
    add("toUpper", |a| {
        one_str("toUpper", a, |x| s(funcs::to_upper(x)))
    });
    add("toLower", |a| {
        one_str("toLower", a, |x| s(funcs::to_lower(x)))
    });
    add("split", |a| {
        exactly("split", a, 2)?;
        Ok(strings(funcs::split(string(a, 0)?, string(a, 1)?)))
    });
    add("join", |a| {
        exactly("join", a, 2)?;
        Ok(s(string_list(a, 0)?.join(string(a, 1)?)))
    });
    add("contains", |a| {
        exactly("contains", a, 2)?;
        Ok(Value::Bool(string(a, 0)?.contains(string(a, 1)?)))
    });
    add("replace", |a| {
        exactly("replace", a, 4)?;
        let (x, old, new) = (string(a, 0)?, string(a, 1)?, string(a, 2)?);
        Ok(s(funcs::replace(x, old, new, int(a, 3)?)))
    });
    add("trimSuffix", |a| {
        exactly("trimSuffix", a, 2)?;
        Ok(s(funcs::trim_suffix(string(a, 0)?, string(a, 1)?)))
    });
    add("base64Encode", |a| {
        one_str("base64Encode", a, |x| s(funcs::b64_encode(x)))
    });
    add("base64Decode", |a| {
        exactly("base64Decode", a, 1)?;
        call("base64Decode", funcs::b64_decode(string(a, 0)?)).map(s)
    });
    add("parseBool", |a| {
        exactly("parseBool", a, 1)?;
        call("parseBool", funcs::parse_bool(string(a, 0)?)).map(Value::Bool)
    });
    add("atoi", |a| {
        exactly("atoi", a, 1)?;
        call("atoi", funcs::atoi(string(a, 0)?)).map(Value::Int)
    });

    // Data.
    add("json", |a| {
        exactly("json", a, 1)?;
        call("json", funcs::json_object(string(a, 0)?)).map(from_json)
    });
    add("jsonArray", |a| {
        exactly("jsonArray", a, 1)?;
        call("jsonArray", funcs::json_array(string(a, 0)?))
            .map(|j| remember(GoList::Other, from_json(j)))
    });
    add("map", |a| {
        if a.len() % 2 != 0 {
            return call("map", Err("invalid map call".to_owned()));
        }
        let mut m = BTreeMap::new();
        for kv in a.chunks(2) {
            let Value::String(k) = &kv[0] else {
                return call("map", Err("map keys must be strings".to_owned()));
            };
            m.insert(k.clone(), kv[1].clone());
        }
        Ok(Value::Map(Arc::new(m)))
    });
    add("getenv", |a| {
        at_least("getenv", a, 1)?;
        let default = if a.len() > 1 { string(a, 1)? } else { "" };
        Ok(s(funcs::getenv(string(a, 0)?, default)))
    });
    add("datetime", |a| {
        exactly("datetime", a, 0)?;
        Ok(s(go_time_now()))
    });
    add("seq", |a| {
        exactly("seq", a, 2)?;
        let items = call("seq", funcs::seq(int(a, 0)?, int(a, 1)?))?;
        Ok(list(items.into_iter().map(Value::Int)))
    });
    add("add", |a| arith("add", a));
    add("sub", |a| arith("sub", a));
    add("mul", |a| arith("mul", a));
    add("div", |a| arith("div", a));
    add("mod", |a| arith("mod", a));

    // Lists.
    add("reverse", |a| {
        exactly("reverse", a, 1)?;
        // confd's Reverse switches on []string and []memkv.KVPair and returns anything else
        // unchanged: gets' memkv.KVPairs (a named type), seq's []int, jsonArray's
        // []interface{}. gotmpl lists carry no Go type, so the lists whose type decides are
        // remembered by identity while the render runs.
        let Value::List(items) = &a[0] else {
            return Ok(a[0].clone());
        };
        let reversible = match typed(&a[0]) {
            Some(GoList::KvSlice) => true,
            Some(GoList::Other) => false,
            None => items.iter().all(|v| matches!(v, Value::String(_))),
        };
        Ok(if reversible {
            list(items.iter().rev().cloned())
        } else {
            a[0].clone()
        })
    });
    add("sortByLength", |a| {
        exactly("sortByLength", a, 1)?;
        let items = string_list(a, 0)?;
        Ok(strings(funcs::sort_by_length(items, |x| x.len())))
    });
    add("sortKVByLength", |a| {
        exactly("sortKVByLength", a, 1)?;
        let Value::List(items) = &a[0] else {
            return Err(wrong_type("[]memkv.KVPair", &a[0]));
        };
        let mut keyed = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.field("Key") {
                Some(Value::String(k)) => keyed.push((k.len(), item.clone())),
                _ => return Err(wrong_type("[]memkv.KVPair", &a[0])),
            }
        }
        Ok(remember(
            GoList::KvSlice,
            list(
                funcs::sort_by_length(keyed, |(len, _)| *len)
                    .into_iter()
                    .map(|(_, v)| v),
            ),
        ))
    });

    // Host lookups.
    add("lookupIP", |a| {
        one_str("lookupIP", a, |x| strings(funcs::lookup_ip(x, |_| true)))
    });
    add("lookupIPV4", |a| {
        one_str("lookupIPV4", a, |x| {
            strings(funcs::lookup_ip(x, |ip| ip.is_ipv4()))
        })
    });
    add("lookupIPV6", |a| {
        one_str("lookupIPV6", a, |x| {
            strings(funcs::lookup_ip(x, |ip| ip.is_ipv6()))
        })
    });
    add("lookupSRV", |a| {
        exactly("lookupSRV", a, 3)?;
        let records = funcs::lookup_srv(string(a, 0)?, string(a, 1)?, string(a, 2)?);
        Ok(list(records.into_iter().map(|r| {
            let mut m = BTreeMap::new();
            m.insert(Arc::from("Target"), s(r.target));
            m.insert(Arc::from("Port"), Value::Int(r.port.into()));
            m.insert(Arc::from("Priority"), Value::Int(r.priority.into()));
            m.insert(Arc::from("Weight"), Value::Int(r.weight.into()));
            Value::Map(Arc::new(m))
        })))
    });
    add("fileExists", |a| {
        one_str("fileExists", a, |x| Value::Bool(funcs::file_exists(x)))
    });
    m
}

// ---- Go list types that change what a function does ----

/// The Go type of a list where `reverse` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoList {
    /// `[]memkv.KVPair` (from `sortKVByLength`): reversed.
    KvSlice,
    /// `memkv.KVPairs`, `[]interface{}`: returned unchanged.
    Other,
}

thread_local! {
    /// Lists made during the render on this thread, with their Go type. The values are kept
    /// (not just their addresses) so an address cannot be reused by another list meanwhile.
    static TYPED: std::cell::RefCell<Vec<(Value, GoList)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Forgets every remembered list; called before and after each render.
pub(crate) fn forget_types() {
    TYPED.with(|t| t.borrow_mut().clear());
}

fn remember(kind: GoList, v: Value) -> Value {
    TYPED.with(|t| t.borrow_mut().push((v.clone(), kind)));
    v
}

fn typed(v: &Value) -> Option<GoList> {
    let Value::List(l) = v else { return None };
    TYPED.with(|t| {
        t.borrow().iter().find_map(|(seen, kind)| match seen {
            Value::List(s) if Arc::ptr_eq(s, l) => Some(*kind),
            _ => None,
        })
    })
}

// ---- argument checks, worded as Go's reflection-based calls ----

fn exactly(name: &str, a: &[Value], n: usize) -> Result<(), TemplateError> {
    if a.len() == n {
        Ok(())
    } else {
        Err(exec(format!(
            "wrong number of args for {name}: want {n} got {}",
            a.len()
        )))
    }
}

fn at_least(name: &str, a: &[Value], n: usize) -> Result<(), TemplateError> {
    if a.len() >= n {
        Ok(())
    } else {
        Err(exec(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            a.len()
        )))
    }
}

fn wrong_type(want: &str, got: &Value) -> TemplateError {
    exec(format!(
        "wrong type for value; expected {want}; got {}",
        go_type(got)
    ))
}

/// Go's name for the type of `v` as text/template would print it.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Nil => "<nil>",
        other => other.type_name(),
    }
}

fn string(a: &[Value], i: usize) -> Result<&str, TemplateError> {
    match &a[i] {
        Value::String(x) => Ok(x),
        other => Err(wrong_type("string", other)),
    }
}

fn int(a: &[Value], i: usize) -> Result<i64, TemplateError> {
    match &a[i] {
        Value::Int(n) => Ok(*n),
        Value::Uint(n) => i64::try_from(*n).map_err(|_| wrong_type("int", &a[i])),
        other => Err(wrong_type("int", other)),
    }
}

/// A `[]string` argument: a list whose items are all strings.
fn string_list(a: &[Value], i: usize) -> Result<Vec<&str>, TemplateError> {
    let Value::List(items) = &a[i] else {
        return Err(wrong_type("[]string", &a[i]));
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(x) => Ok(&**x),
            _ => Err(wrong_type("[]string", &a[i])),
        })
        .collect()
}

fn one_str(name: &str, a: &[Value], f: impl FnOnce(&str) -> Value) -> GoResult {
    exactly(name, a, 1)?;
    Ok(f(string(a, 0)?))
}

fn arith(name: &'static str, a: &[Value]) -> GoResult {
    exactly(name, a, 2)?;
    let (x, y) = (int(a, 0)?, int(a, 1)?);
    let op = funcs::ARITH
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, op)| *op)
        .ok_or_else(|| exec(format!("unknown operation {name}")))?;
    call(name, op(x, y)).map(Value::Int)
}

// ---- results ----

/// An error a function returned, as Go's text/template reports it.
fn call<T>(name: &str, r: Result<T, String>) -> Result<T, TemplateError> {
    r.map_err(|e| exec(format!("error calling {name}: {e}")))
}

fn exec(message: String) -> TemplateError {
    TemplateError::Exec(message)
}

fn view() -> Result<Arc<KvView>, TemplateError> {
    funcs::current_view().map_err(exec)
}

fn s(x: impl AsRef<str>) -> Value {
    Value::String(x.as_ref().into())
}

fn list(items: impl Iterator<Item = Value>) -> Value {
    Value::List(items.collect::<Vec<_>>().into())
}

fn strings<S: AsRef<str>>(items: Vec<S>) -> Value {
    list(items.into_iter().map(s))
}

/// memkv's KVPair.
fn kv_pair(key: &str, value: &str) -> Value {
    let mut m = BTreeMap::new();
    m.insert(Arc::from("Key"), s(key));
    m.insert(Arc::from("Value"), s(value));
    Value::Map(Arc::new(m))
}

/// encoding/json into `interface{}`: every number is a float64.
fn from_json(j: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        J::String(x) => s(x),
        J::Array(a) => list(a.into_iter().map(from_json)),
        J::Object(o) => Value::Map(Arc::new(
            o.into_iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_json(v)))
                .collect(),
        )),
    }
}

/// `time.Now().String()` without the monotonic clock reading Go appends
/// (`2006-01-02 15:04:05.999999999 -0700 MST`).
fn go_time_now() -> String {
    let now = chrono::Local::now();
    let mut frac = format!("{:09}", now.timestamp_subsec_nanos());
    while frac.ends_with('0') {
        frac.pop();
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    format!(
        "{}{frac} {} {}",
        now.format("%Y-%m-%d %H:%M:%S"),
        now.format("%z"),
        now.format("%Z")
    )
}
