//! The values a Go template computes with, each carrying the Go type confd's functions give
//! it, because Go's printing, comparisons and argument checks depend on that type:
//! `[]string` and `[]interface {}` print alike but `sortByLength` takes only the first;
//! `memkv.KVPairs` (what `gets` returns) is not reversed by confd's `reverse` while
//! `[]memkv.KVPair` is.
//!
//! Slices share their backing array as Go's do, so confd's in-place `reverse` and
//! `sortByLength` change every variable that holds the same list. Values live for one render
//! on one thread, hence `Rc`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Go integer types that occur in confd templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntType {
    Int,
    Int64,
    Uint8,
    Uint16,
    Month,
    Weekday,
    Duration,
}

impl IntType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            IntType::Int => "int",
            IntType::Int64 => "int64",
            IntType::Uint8 => "uint8",
            IntType::Uint16 => "uint16",
            IntType::Month => "time.Month",
            IntType::Weekday => "time.Weekday",
            IntType::Duration => "time.Duration",
        }
    }

    pub(crate) fn unsigned(self) -> bool {
        matches!(self, IntType::Uint8 | IntType::Uint16)
    }
}

/// Go slice types that occur in confd templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SliceType {
    /// `[]string`
    String,
    /// `[]int`
    Int,
    /// `[]interface {}`
    Iface,
    /// `[]memkv.KVPair`
    Kv,
    /// `memkv.KVPairs` (a named `[]memkv.KVPair`)
    KvPairs,
    /// `[]*net.SRV`
    Srv,
}

impl SliceType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SliceType::String => "[]string",
            SliceType::Int => "[]int",
            SliceType::Iface => "[]interface {}",
            SliceType::Kv => "[]memkv.KVPair",
            SliceType::KvPairs => "memkv.KVPairs",
            SliceType::Srv => "[]*net.SRV",
        }
    }
}

/// A Go slice: a window on a shared backing array.
#[derive(Debug, Clone)]
pub(crate) struct Slice {
    pub ty: SliceType,
    /// `None` is a nil slice.
    data: Option<Rc<RefCell<Vec<Value>>>>,
    off: usize,
    len: usize,
    cap: usize,
}

impl Slice {
    pub(crate) fn new(ty: SliceType, items: Vec<Value>) -> Self {
        let len = items.len();
        Self {
            ty,
            data: Some(Rc::new(RefCell::new(items))),
            off: 0,
            len,
            cap: len,
        }
    }

    pub(crate) fn nil(ty: SliceType) -> Self {
        Self {
            ty,
            data: None,
            off: 0,
            len: 0,
            cap: 0,
        }
    }

    pub(crate) fn is_nil(&self) -> bool {
        self.data.is_none()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// The element at `i` (< len).
    pub(crate) fn get(&self, i: usize) -> Value {
        match &self.data {
            Some(d) => d.borrow()[self.off + i].clone(),
            None => Value::Invalid,
        }
    }

    /// A copy of the elements.
    pub(crate) fn items(&self) -> Vec<Value> {
        match &self.data {
            Some(d) => d.borrow()[self.off..self.off + self.len].to_vec(),
            None => Vec::new(),
        }
    }

    /// Runs `f` on the elements in place (what Go's in-place sorts do).
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(&mut [Value]) -> R) -> Option<R> {
        let d = self.data.as_ref()?;
        let mut v = d.borrow_mut();
        Some(f(&mut v[self.off..self.off + self.len]))
    }

    /// Go's `s[lo:hi:max]` (bounds already checked against cap).
    pub(crate) fn reslice(&self, lo: usize, hi: usize, max: usize) -> Self {
        Self {
            ty: self.ty,
            data: self.data.clone(),
            off: self.off + lo,
            len: hi - lo,
            cap: max - lo,
        }
    }

    /// The same slice with another (assignable) type.
    pub(crate) fn retyped(&self, ty: SliceType) -> Self {
        Self { ty, ..self.clone() }
    }
}

/// memkv's KVPair.
#[derive(Debug)]
pub(crate) struct KvPair {
    pub key: Rc<str>,
    pub value: Rc<str>,
}

/// net.SRV.
#[derive(Debug)]
pub(crate) struct Srv {
    pub target: Rc<str>,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// A `map[string]interface {}`; `None` is a nil map. Keys iterate in Go's printing order.
pub(crate) type GoMap = Option<Rc<BTreeMap<Rc<str>, Value>>>;

/// One value of a running template.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// No value at all (Go's invalid `reflect.Value`): confd's data `.`, a missing map key.
    Invalid,
    /// A nil `interface {}` (a JSON `null`, a `nil` argument).
    Nil,
    Bool(bool),
    Int(i64, IntType),
    Float(f64),
    Complex(f64, f64),
    Str(Rc<str>),
    Slice(Slice),
    Map(GoMap),
    Kv(Rc<KvPair>),
    Srv(Rc<Srv>),
    Time(Rc<super::time::GoTime>),
}

impl Value {
    pub(crate) fn str(s: impl Into<Rc<str>>) -> Self {
        Value::Str(s.into())
    }

    pub(crate) fn int(n: i64) -> Self {
        Value::Int(n, IntType::Int)
    }

    /// `[]string` of `items`.
    pub(crate) fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Self {
        Value::Slice(Slice::new(
            SliceType::String,
            items.into_iter().map(|s| Value::str(s.as_ref())).collect(),
        ))
    }

    /// Go's name for the value's type (`reflect.Type.String()`), as `%T` prints it.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Invalid | Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_, t) => t.name(),
            Value::Float(_) => "float64",
            Value::Complex(..) => "complex128",
            Value::Str(_) => "string",
            Value::Slice(s) => s.ty.name(),
            Value::Map(_) => "map[string]interface {}",
            Value::Kv(_) => "memkv.KVPair",
            Value::Srv(_) => "*net.SRV",
            Value::Time(_) => "time.Time",
        }
    }

    /// Whether the value is a nil interface or no value.
    pub(crate) fn is_nothing(&self) -> bool {
        matches!(self, Value::Invalid | Value::Nil)
    }
}
