//! The key/value data renders read, with no I/O: the etcd module fills it, the template
//! engines read it.
//!
//! - [`snapshot`]: [`Snapshot`], every readable watched key at one revision, as the etcd task
//!   publishes it.
//! - [`view`]: [`KvView`], the keys one resource sees (its prefix stripped, as confd's memkv
//!   store holds them) and confd's queries over them.
//! - [`text`]: keys and values that are not text (invalid UTF-8, control characters).
//! - [`gopath`]: Go's `path` package semantics (`Match`, `Clean`, `Dir`, `Base`) that the
//!   queries and the template helpers share, so globs and path helpers behave as in confd.

pub mod gopath;
pub mod snapshot;
pub mod text;
pub mod view;

pub use gopath::BadPattern;
pub use snapshot::{merge_prefixes, KeyMap, Snapshot};
pub use text::NotText;
pub use view::KvView;
