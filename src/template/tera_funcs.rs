//! confd's template function set for Tera: the store functions (`getv`, `getvs`, `get`,
//! `gets`, `ls`, `lsdir`, `exists`), which read the [`KvView`] of the render in progress, and
//! the helpers (`base`, `split`, `json`, `seq`, `lookupIP`, ...), with the filter forms the
//! interface contract names.
//!
//! Every function takes keyword arguments only (Tera has no positional ones), rejects
//! arguments it does not know (so a typo such as `defualt=` fails instead of being ignored),
//! and prefixes its errors with its own name. docs/templates.md is the reference for authors.

use std::collections::BTreeMap;

use tera::{Error, Kwargs, State, Tera, TeraResult, Value};

use super::{funcs, functions};
use crate::store::{gopath, KvView};

/// The view of the render in progress on this thread.
fn current_view() -> TeraResult<std::sync::Arc<KvView>> {
    funcs::current_view().map_err(Error::message)
}

/// Registers every function and filter on `tera`. Must run before templates are added:
/// Tera resolves function and filter names when it compiles a template.
pub(crate) fn register(tera: &mut Tera) {
    register_store(tera);
    register_strings(tera);
    register_data(tera);
    register_lists(tera);
    register_lookups(tera);
}

/// The store: values and keys under the resource's prefix, at one revision.
fn register_store(tera: &mut Tera) {
    func(tera, "getv", getv);
    func(tera, "getvs", |kw| {
        let p = str_arg(kw, "pattern")?;
        Ok(current_view()?.getvs(p).map_err(Error::message)?.into())
    });
    func(tera, "get", |kw| {
        let key = str_arg(kw, "key")?;
        let view = current_view()?;
        match view.get(key) {
            Some(v) => Ok(kv_value(key, v)),
            None => Err(missing_key(&view, key)),
        }
    });
    func(tera, "gets", |kw| {
        let p = str_arg(kw, "pattern")?;
        let items = current_view()?.gets(p).map_err(Error::message)?;
        Ok(Value::from(
            items
                .iter()
                .map(|(k, v)| kv_value(k, v))
                .collect::<Vec<_>>(),
        ))
    });
    func(tera, "ls", |kw| {
        Ok(current_view()?.ls(str_arg(kw, "path")?).into())
    });
    func(tera, "lsdir", |kw| {
        Ok(current_view()?.lsdir(str_arg(kw, "path")?).into())
    });
    func(tera, "exists", |kw| {
        Ok(current_view()?.exists(str_arg(kw, "key")?).into())
    });
}

/// Path and string helpers; the first six are filters too (the interface contract).
fn register_strings(tera: &mut Tera) {
    func(tera, "base", |kw| {
        Ok(gopath::base(str_arg(kw, "path")?).into())
    });
    func(tera, "dir", |kw| {
        Ok(gopath::dir(str_arg(kw, "path")?).into())
    });
    func(tera, "split", |kw| {
        Ok(split(str_arg(kw, "s")?, str_arg(kw, "sep")?))
    });
    func(tera, "join", |kw| {
        join(list_arg(kw, "list")?, str_arg(kw, "sep")?)
    });
    func(tera, "toUpper", |kw| {
        Ok(funcs::to_upper(str_arg(kw, "s")?).into())
    });
    func(tera, "toLower", |kw| {
        Ok(funcs::to_lower(str_arg(kw, "s")?).into())
    });
    filter(tera, "base", &[], |v, _| {
        Ok(gopath::base(str_input(v)?).into())
    });
    filter(tera, "dir", &[], |v, _| {
        Ok(gopath::dir(str_input(v)?).into())
    });
    // Replaces Tera's own `split(pat=)`; `pat=` is still accepted for Tera habits.
    filter(tera, "split", &["sep", "pat"], |v, kw| {
        let sep = match opt_str_arg(kw, "sep")? {
            Some(s) => s,
            None => str_arg(kw, "pat").map_err(|_| Error::message("missing argument `sep`"))?,
        };
        Ok(split(str_input(v)?, sep))
    });
    // `join(sep=)` as a filter is Tera's built-in one, which already has this signature.
    filter(tera, "toUpper", &[], |v, _| {
        Ok(funcs::to_upper(str_input(v)?).into())
    });
    filter(tera, "toLower", &[], |v, _| {
        Ok(funcs::to_lower(str_input(v)?).into())
    });

    func(tera, "contains", |kw| {
        Ok(str_arg(kw, "s")?.contains(str_arg(kw, "substr")?).into())
    });
    func(tera, "replace", |kw| {
        let n = opt_int_arg(kw, "n")?.unwrap_or(-1);
        Ok(replace(
            str_arg(kw, "s")?,
            str_arg(kw, "old")?,
            str_arg(kw, "new")?,
            n,
        )
        .into())
    });
    func(tera, "trimSuffix", |kw| {
        Ok(trim_suffix(str_arg(kw, "s")?, str_arg(kw, "suffix")?).into())
    });
    filter(tera, "trimSuffix", &["suffix"], |v, kw| {
        Ok(trim_suffix(str_input(v)?, str_arg(kw, "suffix")?).into())
    });
}

/// Data helpers: JSON, maps, the environment, times, numbers and booleans.
fn register_data(tera: &mut Tera) {
    func(tera, "json", |kw| json_object(str_arg(kw, "s")?));
    func(tera, "jsonArray", |kw| json_array(str_arg(kw, "s")?));
    filter(tera, "json", &[], |v, _| json_object(str_input(v)?));
    filter(tera, "jsonArray", &[], |v, _| json_array(str_input(v)?));
    func(tera, "map", |kw| make_map(list_arg(kw, "pairs")?));
    func(tera, "getenv", |kw| {
        let default = opt_str_arg(kw, "default")?.unwrap_or("");
        Ok(getenv(str_arg(kw, "name")?, default).into())
    });
    // Tera's datetime formats the time itself (Go's returns a time.Time).
    register_func(tera, "datetime", vec!["format", "utc"], |kw| {
        let utc = opt_bool_arg(kw, "utc")?.unwrap_or(false);
        datetime(opt_str_arg(kw, "format")?, utc).map(Value::from)
    });
    func(tera, "seq", |kw| {
        seq(int_arg(kw, "start")?, int_arg(kw, "end")?)
    });
    func(tera, "atoi", |kw| atoi(str_arg(kw, "s")?).map(Value::from));
    filter(tera, "atoi", &[], |v, _| {
        atoi(str_input(v)?).map(Value::from)
    });
    for (name, op) in funcs::ARITH {
        arith(tera, name, op);
    }
    func(tera, "base64Encode", |kw| {
        Ok(b64_encode(str_arg(kw, "s")?).into())
    });
    func(tera, "base64Decode", |kw| {
        b64_decode(str_arg(kw, "s")?).map(Value::from)
    });
    filter(tera, "base64Encode", &[], |v, _| {
        Ok(b64_encode(str_input(v)?).into())
    });
    filter(tera, "base64Decode", &[], |v, _| {
        b64_decode(str_input(v)?).map(Value::from)
    });
    func(tera, "parseBool", |kw| {
        parse_bool(str_arg(kw, "s")?).map(Value::from)
    });
    filter(tera, "parseBool", &[], |v, _| {
        parse_bool(str_input(v)?).map(Value::from)
    });
}

/// List helpers. `reverse` as a filter is Tera's built-in one.
fn register_lists(tera: &mut Tera) {
    func(tera, "reverse", |kw| {
        Ok(list_arg(kw, "list")?
            .iter()
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .into())
    });
    func(tera, "sortByLength", |kw| {
        sort_by_length(list_arg(kw, "list")?)
    });
    func(tera, "sortKVByLength", |kw| {
        sort_kv_by_length(list_arg(kw, "list")?)
    });
    filter(tera, "sortByLength", &[], |v, _| {
        sort_by_length(list_input(v)?)
    });
    filter(tera, "sortKVByLength", &[], |v, _| {
        sort_kv_by_length(list_input(v)?)
    });
}

/// Host lookups (DNS), as confd's `lookupIP` and `lookupSRV`.
fn register_lookups(tera: &mut Tera) {
    func(tera, "lookupIP", |kw| {
        Ok(lookup_ip(str_arg(kw, "name")?, |_| true).into())
    });
    func(tera, "lookupIPV4", |kw| {
        Ok(lookup_ip(str_arg(kw, "name")?, |ip| ip.is_ipv4()).into())
    });
    func(tera, "lookupIPV6", |kw| {
        Ok(lookup_ip(str_arg(kw, "name")?, |ip| ip.is_ipv6()).into())
    });
    func(tera, "lookupSRV", |kw| {
        let (service, proto) = (str_arg(kw, "service")?, str_arg(kw, "proto")?);
        Ok(lookup_srv(service, proto, str_arg(kw, "name")?))
    });
    func(tera, "fileExists", |kw| {
        Ok(file_exists(str_arg(kw, "path")?).into())
    });
}

// ---- registration and argument helpers ----

/// Registers confd function `name`: its keyword arguments are the parameter names of the
/// function table ([`functions`]), checked on every call; its errors are prefixed with its name.
fn func<F>(tera: &mut Tera, name: &'static str, f: F)
where
    F: Fn(&Kwargs) -> TeraResult<Value> + Send + Sync + 'static,
{
    let allowed = functions::keywords(name);
    debug_assert!(
        functions::find(name).is_some(),
        "{name} is not in the function table"
    );
    register_func(tera, name, allowed, f);
}

/// Registers a function taking the keyword arguments `allowed`.
fn register_func<F>(tera: &mut Tera, name: &'static str, allowed: Vec<&'static str>, f: F)
where
    F: Fn(&Kwargs) -> TeraResult<Value> + Send + Sync + 'static,
{
    tera.register_function(name, move |kw: Kwargs, _: &State| {
        check_args(&kw, &allowed)
            .and_then(|()| f(&kw))
            .map_err(|e| Error::message(format!("{name}: {e}")))
    });
}

/// Registers a filter the same way as [`func`]; `f` gets the filtered value and the kwargs.
fn filter<F>(tera: &mut Tera, name: &'static str, allowed: &'static [&'static str], f: F)
where
    F: Fn(&Value, &Kwargs) -> TeraResult<Value> + Send + Sync + 'static,
{
    tera.register_filter(name, move |v: &Value, kw: Kwargs, _: &State| {
        check_args(&kw, allowed)
            .and_then(|()| f(v, &kw))
            .map_err(|e| Error::message(format!("filter {name}: {e}")))
    });
}

/// Registers one of the integer operations `name(a=, b=)`.
fn arith(tera: &mut Tera, name: &'static str, op: funcs::IntOp) {
    func(tera, name, move |kw| {
        op(int_arg(kw, "a")?, int_arg(kw, "b")?)
            .map(Value::from)
            .map_err(Error::message)
    });
}

fn check_args(kw: &Kwargs, allowed: &[&str]) -> TeraResult<()> {
    for (k, _) in kw.iter() {
        let name = k.as_str().unwrap_or("");
        if !allowed.contains(&name) {
            let known = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::message(format!(
                "unknown argument `{name}` (arguments: {known})"
            )));
        }
    }
    Ok(())
}

fn type_error(name: &str, want: &str, got: &Value) -> Error {
    Error::message(format!(
        "argument `{name}` must be {want}, got {}",
        got.name()
    ))
}

fn opt_arg<'k>(kw: &'k Kwargs, name: &'static str) -> TeraResult<Option<&'k Value>> {
    kw.get::<&Value>(name)
}

fn arg<'k>(kw: &'k Kwargs, name: &'static str) -> TeraResult<&'k Value> {
    opt_arg(kw, name)?.ok_or_else(|| Error::message(format!("missing argument `{name}`")))
}

fn str_arg<'k>(kw: &'k Kwargs, name: &'static str) -> TeraResult<&'k str> {
    let v = arg(kw, name)?;
    v.as_str().ok_or_else(|| type_error(name, "a string", v))
}

fn opt_str_arg<'k>(kw: &'k Kwargs, name: &'static str) -> TeraResult<Option<&'k str>> {
    match opt_arg(kw, name)? {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| type_error(name, "a string", v)),
    }
}

fn opt_bool_arg(kw: &Kwargs, name: &'static str) -> TeraResult<Option<bool>> {
    match opt_arg(kw, name)? {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| type_error(name, "true or false", v)),
    }
}

fn opt_int_arg(kw: &Kwargs, name: &'static str) -> TeraResult<Option<i64>> {
    match opt_arg(kw, name)? {
        None => Ok(None),
        Some(v) => match kw.get::<i64>(name) {
            Ok(n) => Ok(n),
            Err(_) => Err(type_error(
                name,
                "an integer (use atoi or `| int` on strings)",
                v,
            )),
        },
    }
}

fn int_arg(kw: &Kwargs, name: &'static str) -> TeraResult<i64> {
    opt_int_arg(kw, name)?.ok_or_else(|| Error::message(format!("missing argument `{name}`")))
}

fn list_arg<'k>(kw: &'k Kwargs, name: &'static str) -> TeraResult<&'k [Value]> {
    let v = arg(kw, name)?;
    v.as_array().ok_or_else(|| type_error(name, "a list", v))
}

fn str_input(v: &Value) -> TeraResult<&str> {
    v.as_str()
        .ok_or_else(|| Error::message(format!("expects a string, got {}", v.name())))
}

fn list_input(v: &Value) -> TeraResult<&[Value]> {
    v.as_array()
        .ok_or_else(|| Error::message(format!("expects a list, got {}", v.name())))
}

// ---- store functions ----

/// `{key, value}`, the shape of confd's KVPair (`.Key`, `.Value`).
fn kv_value(key: &str, value: &str) -> Value {
    let mut m = BTreeMap::new();
    m.insert("key", Value::from(key));
    m.insert("value", Value::from(value));
    Value::from(m)
}

/// The missing-key error: the key as the template asked for it and the etcd key looked up.
fn missing_key(view: &KvView, key: &str) -> Error {
    Error::message(funcs::missing_key(view, key))
}

fn getv(kw: &Kwargs) -> TeraResult<Value> {
    let key = str_arg(kw, "key")?;
    let view = current_view()?;
    match (view.get(key), opt_arg(kw, "default")?) {
        (Some(v), _) => Ok(v.into()),
        (None, Some(default)) => Ok(default.clone()),
        (None, None) => Err(missing_key(&view, key)),
    }
}

// ---- adapters onto the shared implementations ----

fn split(s: &str, sep: &str) -> Value {
    funcs::split(s, sep).into()
}

fn join(list: &[Value], sep: &str) -> TeraResult<Value> {
    let parts: Vec<String> = list
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect();
    Ok(parts.join(sep).into())
}

fn replace(s: &str, old: &str, new: &str, n: i64) -> String {
    funcs::replace(s, old, new, n)
}

fn trim_suffix<'a>(s: &'a str, suffix: &str) -> &'a str {
    funcs::trim_suffix(s, suffix)
}

/// JSON to Tera values; object keys sorted, as Go's templates range over maps in key order.
fn from_json(j: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::none(),
        J::Bool(b) => b.into(),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into(),
            (None, Some(u)) => u.into(),
            _ => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        J::String(s) => s.into(),
        J::Array(a) => a.into_iter().map(from_json).collect::<Vec<_>>().into(),
        J::Object(o) => o
            .into_iter()
            .map(|(k, v)| (k, from_json(v)))
            .collect::<BTreeMap<_, _>>()
            .into(),
    }
}

fn json_object(s: &str) -> TeraResult<Value> {
    funcs::json_object(s).map(from_json).map_err(Error::message)
}

fn json_array(s: &str) -> TeraResult<Value> {
    funcs::json_array(s).map(from_json).map_err(Error::message)
}

/// confd's `map k1 v1 k2 v2`: a flat list of alternating string keys and values.
fn make_map(pairs: &[Value]) -> TeraResult<Value> {
    if !pairs.len().is_multiple_of(2) {
        return Err(Error::message(
            "`pairs` needs an even number of items: key, value, key, value, ...",
        ));
    }
    let mut m = BTreeMap::new();
    for kv in pairs.chunks(2) {
        let key = kv[0].as_str().ok_or_else(|| {
            Error::message(format!("map keys must be strings, got {}", kv[0].name()))
        })?;
        m.insert(key.to_owned(), kv[1].clone());
    }
    Ok(m.into())
}

fn getenv(name: &str, default: &str) -> String {
    funcs::getenv(name, default)
}

/// The current time: RFC 3339 by default, else a chrono strftime `format`.
fn datetime(format: Option<&str>, utc: bool) -> TeraResult<String> {
    use chrono::{SecondsFormat, Utc};
    use std::fmt::Write as _;
    let now = Utc::now();
    let mut out = String::new();
    let res = match (format, utc) {
        (None, true) => return Ok(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
        (None, false) => {
            return Ok(now
                .with_timezone(&chrono::Local)
                .to_rfc3339_opts(SecondsFormat::Secs, false))
        }
        (Some(f), true) => write!(out, "{}", now.format(f)),
        (Some(f), false) => write!(out, "{}", now.with_timezone(&chrono::Local).format(f)),
    };
    res.map_err(|_| {
        Error::message(format!(
            "invalid strftime format {:?}",
            format.unwrap_or("")
        ))
    })?;
    Ok(out)
}

fn seq(start: i64, end: i64) -> TeraResult<Value> {
    funcs::seq(start, end)
        .map(Value::from)
        .map_err(Error::message)
}

fn atoi(s: &str) -> TeraResult<i64> {
    funcs::atoi(s).map_err(Error::message)
}

fn b64_encode(s: &str) -> String {
    funcs::b64_encode(s)
}

fn b64_decode(s: &str) -> TeraResult<String> {
    funcs::b64_decode(s).map_err(Error::message)
}

fn parse_bool(s: &str) -> TeraResult<bool> {
    funcs::parse_bool(s).map_err(Error::message)
}

/// Strings by byte length (Go's `len`), shortest first; equal lengths keep their order.
fn sort_by_length(list: &[Value]) -> TeraResult<Value> {
    let mut items: Vec<(usize, &Value)> = Vec::with_capacity(list.len());
    for v in list {
        let s = v.as_str().ok_or_else(|| {
            Error::message(format!("list items must be strings, got {}", v.name()))
        })?;
        items.push((s.len(), v));
    }
    Ok(funcs::sort_by_length(items, |(len, _)| *len)
        .into_iter()
        .map(|(_, v)| v.clone())
        .collect::<Vec<_>>()
        .into())
}

/// `{key, value}` items (from `gets`) by the byte length of `key`; stable.
fn sort_kv_by_length(list: &[Value]) -> TeraResult<Value> {
    let mut items: Vec<(usize, &Value)> = Vec::with_capacity(list.len());
    for v in list {
        let key = v
            .get_from_path("key")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::message("list items must be {key, value} maps, as gets returns")
            })?;
        items.push((key.len(), v));
    }
    Ok(funcs::sort_by_length(items, |(len, _)| *len)
        .into_iter()
        .map(|(_, v)| v.clone())
        .collect::<Vec<_>>()
        .into())
}

fn lookup_ip(name: &str, keep: impl Fn(&std::net::IpAddr) -> bool) -> Vec<String> {
    funcs::lookup_ip(name, keep)
}

/// SRV records as `{target, port, priority, weight}`, in confd's order; empty on failure.
fn lookup_srv(service: &str, proto: &str, name: &str) -> Value {
    funcs::lookup_srv(service, proto, name)
        .into_iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            m.insert("target", Value::from(r.target));
            m.insert("port", Value::from(r.port));
            m.insert("priority", Value::from(r.priority));
            m.insert("weight", Value::from(r.weight));
            Value::from(m)
        })
        .collect::<Vec<_>>()
        .into()
}

fn file_exists(path: &str) -> bool {
    funcs::file_exists(path)
}
