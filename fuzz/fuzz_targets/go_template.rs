//! Any text given to the Go-template engine either fails to load with an error or renders
//! (or fails to render) with an error: no panic, no hang, no abort.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use reconfd::store::KvView;
use reconfd::template::{EngineKind, Template};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    // Host lookups would leave the machine; they are not the parser's business.
    if source.contains("lookup") {
        return;
    }
    let Ok(t) = Template::from_source(Path::new("fuzz.tmpl"), source, EngineKind::Go) else {
        return;
    };
    let mut kv = BTreeMap::new();
    kv.insert("/a".to_owned(), "1".to_owned());
    kv.insert("/svc/x".to_owned(), "10.0.0.1:80".to_owned());
    kv.insert("/cfg".to_owned(), r#"{"n": 2, "l": [1, "x"]}"#.to_owned());
    let _ = t.render(Arc::new(KvView::new(1, "/", kv)));
});
