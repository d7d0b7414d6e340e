//! reconfd's own implementation of Go's text/template, as confd (built with Go 1.19) runs
//! it: [`lex`] and [`parse`] turn a template into parse trees with Go's grammar and Go's
//! parse errors, [`exec`] runs them with Go's semantics, [`fmt`] prints values as Go's fmt
//! does, [`builtins`] holds Go's built-in functions and confd's function map, [`value`] the
//! Go-typed values they compute with, [`json`] and [`time`] what confd's `json` and
//! `datetime` return, [`sort`] Go's `sort.Sort`.
//!
//! The goal is byte-identical output and identically worded errors; the corpus in
//! tests/gotemplate/ checks that against Go itself.

pub(crate) mod builtins;
pub(crate) mod exec;
pub(crate) mod fmt;
pub(crate) mod json;
pub(crate) mod lex;
pub(crate) mod parse;
pub(crate) mod sort;
pub(crate) mod time;
pub(crate) mod value;

pub(crate) use exec::Limits;

/// Parses `source` as Go template `name` with confd's function map.
pub(crate) fn parse_source(name: &str, source: &str) -> Result<parse::Trees, parse::ParseError> {
    stacker::maybe_grow(128 * 1024, 4 * 1024 * 1024, || {
        parse::parse(name, source, &builtins::exists)
    })
}

/// A parsed template, ready to render.
#[derive(Debug)]
pub(crate) struct Compiled {
    program: exec::Program,
}

impl Compiled {
    /// Parses `source`; a parse error is Go's message.
    pub(crate) fn new(name: &str, source: &str) -> Result<Self, String> {
        let trees = parse_source(name, source).map_err(|e| e.message)?;
        Ok(Compiled {
            program: exec::Program::new(name.to_owned(), source.to_owned(), trees.trees),
        })
    }

    /// Renders the file's own template with `.` = nil; the store functions read the view
    /// installed by the caller.
    pub(crate) fn execute(&self, limits: Limits) -> Result<String, String> {
        exec::execute(&self.program, &self.program.name, limits).map_err(|e| e.0)
    }
}
