//! The two choices a settings value or a resource field makes about *how* files are read:
//! which rules resource files follow ([`Dialect`]) and which language a template is written
//! in ([`EngineKind`]). Plain values, so `config` and `resource` can name them without
//! reaching the modules that act on them.

use std::path::Path;

/// Which rules resource files are read by ([`super::Settings::dialect`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// `reconfd run/once/check`: `<confdir>/conf.d/*.toml`, not recursive; an unknown key is
    /// an error, so a typo like `relaod_cmd` cannot go unnoticed.
    #[default]
    Reconfd,
    /// `reconfd confd`, as confd reads conf.d: walked recursively (symlinked directories are
    /// not followed), every file whose name ends in `toml` (confd's glob `*toml`, no dot
    /// needed). confd's own fields mean what they mean to confd (see
    /// [`crate::confd::resource`]); an unknown key is a warning with its line (confd ignores
    /// it silently). The resource's name is its path under conf.d without `.toml`
    /// (`sub/app`), so files of the same name in different directories stay apart.
    Confd,
}

/// Which template language a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Tera, reconfd's native engine.
    Tera,
    /// Go's text/template, as confd uses it.
    Go,
}

impl EngineKind {
    /// The engine a file name implies: `.tmpl` is Go (confd's convention), anything else Tera.
    pub fn for_path(path: &Path) -> Self {
        if path.extension().is_some_and(|e| e == "tmpl") {
            Self::Go
        } else {
            Self::Tera
        }
    }
}
