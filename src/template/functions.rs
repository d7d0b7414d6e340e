//! The one table of confd's template functions: name, parameters in confd's order with their
//! Go types, the Go result, and a line of documentation. The Go engine checks calls against
//! these signatures exactly as Go's text/template checks a function's Go signature; the Tera
//! adapter takes the parameter names as its keyword arguments; `reconfd migrate`'s translator
//! uses both to decide where a Go call has an exact Tera form.

/// The Go type of a parameter or result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GoType {
    /// `string`
    Str,
    /// `int`
    Int,
    /// `bool`
    Bool,
    /// `[]string`
    StrSlice,
    /// `[]int`
    IntSlice,
    /// `[]memkv.KVPair`
    KvSlice,
    /// `memkv.KVPairs`
    KvPairs,
    /// `memkv.KVPair`
    Kv,
    /// `[]*net.SRV`
    SrvSlice,
    /// `[]interface {}`
    IfaceSlice,
    /// `map[string]interface {}`
    Map,
    /// `interface {}`
    Iface,
    /// `time.Time`
    Time,
}

impl GoType {
    /// Go's name for the type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GoType::Str => "string",
            GoType::Int => "int",
            GoType::Bool => "bool",
            GoType::StrSlice => "[]string",
            GoType::IntSlice => "[]int",
            GoType::KvSlice => "[]memkv.KVPair",
            GoType::KvPairs => "memkv.KVPairs",
            GoType::Kv => "memkv.KVPair",
            GoType::SrvSlice => "[]*net.SRV",
            GoType::IfaceSlice => "[]interface {}",
            GoType::Map => "map[string]interface {}",
            GoType::Iface => "interface {}",
            GoType::Time => "time.Time",
        }
    }
}

/// One parameter: its name (also the Tera keyword) and Go type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param {
    pub name: &'static str,
    pub ty: GoType,
}

/// One confd function.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConfdFunction {
    pub name: &'static str,
    /// Fixed parameters, in confd's order.
    pub params: &'static [Param],
    /// A variadic last parameter (`...string`): in confd it is an optional default.
    pub variadic: Option<Param>,
    /// The Go result type.
    pub result: GoType,
    /// Whether the Go function also returns an error.
    pub fallible: bool,
    /// What it does (docs/templates.md says it at length; a test keeps the two in step).
    #[cfg_attr(not(test), allow(dead_code))]
    pub doc: &'static str,
}

const fn p(name: &'static str, ty: GoType) -> Param {
    Param { name, ty }
}

const fn f(
    name: &'static str,
    params: &'static [Param],
    result: GoType,
    fallible: bool,
    doc: &'static str,
) -> ConfdFunction {
    ConfdFunction {
        name,
        params,
        variadic: None,
        result,
        fallible,
        doc,
    }
}

use GoType as T;

/// confd 0.17's function map (its own functions plus memkv's store functions).
pub(crate) const CONFD_FUNCTIONS: &[ConfdFunction] = &[
    ConfdFunction {
        name: "getv",
        params: &[p("key", T::Str)],
        variadic: Some(p("default", T::Str)),
        result: T::Str,
        fallible: true,
        doc: "the value of a key; the default when it is missing, else an error",
    },
    f(
        "getvs",
        &[p("pattern", T::Str)],
        T::StrSlice,
        true,
        "the values of the keys matching a glob, sorted as strings",
    ),
    f(
        "get",
        &[p("key", T::Str)],
        T::Kv,
        true,
        "a key and its value (.Key, .Value); an error when missing",
    ),
    f(
        "gets",
        &[p("pattern", T::Str)],
        T::KvPairs,
        true,
        "the keys matching a glob with their values, sorted by key",
    ),
    f(
        "ls",
        &[p("path", T::Str)],
        T::StrSlice,
        false,
        "the names of the keys and directories directly under a path",
    ),
    f(
        "lsdir",
        &[p("path", T::Str)],
        T::StrSlice,
        false,
        "the names of the directories directly under a path",
    ),
    f(
        "exists",
        &[p("key", T::Str)],
        T::Bool,
        false,
        "whether a key exists",
    ),
    f(
        "base",
        &[p("path", T::Str)],
        T::Str,
        false,
        "the last element of a path",
    ),
    f(
        "dir",
        &[p("path", T::Str)],
        T::Str,
        false,
        "all but the last element of a path",
    ),
    f(
        "split",
        &[p("s", T::Str), p("sep", T::Str)],
        T::StrSlice,
        false,
        "a string split at every separator",
    ),
    f(
        "join",
        &[p("list", T::StrSlice), p("sep", T::Str)],
        T::Str,
        false,
        "a list of strings joined with a separator",
    ),
    f("toUpper", &[p("s", T::Str)], T::Str, false, "upper case"),
    f("toLower", &[p("s", T::Str)], T::Str, false, "lower case"),
    f(
        "contains",
        &[p("s", T::Str), p("substr", T::Str)],
        T::Bool,
        false,
        "whether a string contains another",
    ),
    f(
        "replace",
        &[
            p("s", T::Str),
            p("old", T::Str),
            p("new", T::Str),
            p("n", T::Int),
        ],
        T::Str,
        false,
        "the first n (all when n < 0) occurrences replaced",
    ),
    f(
        "trimSuffix",
        &[p("s", T::Str), p("suffix", T::Str)],
        T::Str,
        false,
        "a string without a trailing suffix",
    ),
    f(
        "json",
        &[p("s", T::Str)],
        T::Map,
        true,
        "a JSON object as a map (numbers are float64)",
    ),
    f(
        "jsonArray",
        &[p("s", T::Str)],
        T::IfaceSlice,
        true,
        "a JSON array as a list (numbers are float64)",
    ),
    ConfdFunction {
        name: "map",
        params: &[],
        variadic: Some(p("pairs", T::Iface)),
        result: T::Map,
        fallible: true,
        doc: "a map from alternating keys and values",
    },
    ConfdFunction {
        name: "getenv",
        params: &[p("name", T::Str)],
        variadic: Some(p("default", T::Str)),
        result: T::Str,
        fallible: false,
        doc: "an environment variable; the default when it is unset or empty",
    },
    f(
        "datetime",
        &[],
        T::Time,
        false,
        "the current local time (a time.Time: .Format, .Unix, ...)",
    ),
    f(
        "seq",
        &[p("start", T::Int), p("end", T::Int)],
        T::IntSlice,
        false,
        "the integers from start to end, inclusive",
    ),
    f(
        "atoi",
        &[p("s", T::Str)],
        T::Int,
        true,
        "a decimal string as an integer",
    ),
    f(
        "add",
        &[p("a", T::Int), p("b", T::Int)],
        T::Int,
        false,
        "a + b",
    ),
    f(
        "sub",
        &[p("a", T::Int), p("b", T::Int)],
        T::Int,
        false,
        "a - b",
    ),
    f(
        "mul",
        &[p("a", T::Int), p("b", T::Int)],
        T::Int,
        false,
        "a * b",
    ),
    f(
        "div",
        &[p("a", T::Int), p("b", T::Int)],
        T::Int,
        false,
        "a / b, truncated",
    ),
    f(
        "mod",
        &[p("a", T::Int), p("b", T::Int)],
        T::Int,
        false,
        "a % b",
    ),
    f(
        "base64Encode",
        &[p("s", T::Str)],
        T::Str,
        false,
        "standard base64 with padding",
    ),
    f(
        "base64Decode",
        &[p("s", T::Str)],
        T::Str,
        true,
        "standard base64 decoded",
    ),
    f(
        "parseBool",
        &[p("s", T::Str)],
        T::Bool,
        true,
        "Go's boolean spellings (1, t, true, 0, f, false, ...)",
    ),
    f(
        "reverse",
        &[p("list", T::Iface)],
        T::Iface,
        false,
        "a []string or []KVPair reversed in place; anything else unchanged",
    ),
    f(
        "sortByLength",
        &[p("list", T::StrSlice)],
        T::StrSlice,
        false,
        "strings sorted by length, in place",
    ),
    f(
        "sortKVByLength",
        &[p("list", T::KvSlice)],
        T::KvSlice,
        false,
        "key/value pairs sorted by key length, in place",
    ),
    f(
        "lookupIP",
        &[p("name", T::Str)],
        T::StrSlice,
        false,
        "the addresses of a host name, sorted",
    ),
    f(
        "lookupIPV4",
        &[p("name", T::Str)],
        T::StrSlice,
        false,
        "the IPv4 addresses of a host name, sorted",
    ),
    f(
        "lookupIPV6",
        &[p("name", T::Str)],
        T::StrSlice,
        false,
        "the IPv6 addresses of a host name, sorted",
    ),
    f(
        "lookupSRV",
        &[p("service", T::Str), p("proto", T::Str), p("name", T::Str)],
        T::SrvSlice,
        false,
        "SRV records (.Target, .Port, .Priority, .Weight), sorted",
    ),
    f(
        "fileExists",
        &[p("path", T::Str)],
        T::Bool,
        false,
        "whether a file exists on the host",
    ),
];

/// The function called `name`.
pub(crate) fn find(name: &str) -> Option<&'static ConfdFunction> {
    CONFD_FUNCTIONS.iter().find(|f| f.name == name)
}

/// The Tera keyword arguments of `name` (its parameter names).
pub(crate) fn keywords(name: &str) -> Vec<&'static str> {
    find(name).map_or_else(Vec::new, |f| {
        f.params
            .iter()
            .chain(f.variadic.iter())
            .map(|p| p.name)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = super::CONFD_FUNCTIONS.iter().map(|f| f.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn every_function_is_documented() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/templates.md"),
        )
        .unwrap();
        for f in super::CONFD_FUNCTIONS {
            assert!(!f.doc.is_empty(), "{} has no doc line", f.name);
            assert!(
                docs.contains(f.name),
                "docs/templates.md does not mention {}",
                f.name
            );
        }
    }
}
