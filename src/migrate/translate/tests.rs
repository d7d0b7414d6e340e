//! Translator tests: Tera text for Go snippets, refusal reasons, and renders compared with
//! what Go renders.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{translate, Outcome, Refusal};
use crate::store::KvView;
use crate::template::Template;

fn tr(src: &str) -> String {
    match translate(src) {
        Outcome::Translated(t) => t,
        other => panic!("{src:?} was not translated: {other:?}"),
    }
}

fn refused(src: &str) -> Refusal {
    match translate(src) {
        Outcome::Refused(r) => r,
        other => panic!("{src:?} was not refused: {other:?}"),
    }
}

/// Renders Tera `source` against `pairs` (keys as the template sees them).
fn render_tera(source: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tera");
    std::fs::write(&path, source).unwrap();
    let t = Template::load(&path).map_err(|e| e.to_string())?;
    let entries: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    t.render(Arc::new(KvView::new(1, "", entries)))
        .map_err(|e| e.to_string())
}

#[test]
#[ignore]
fn explore_corpus() {
    let dir = std::env::var("CORPUS").unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for case in names {
        let src = std::fs::read_to_string(case.join("template.tmpl")).unwrap();
        match translate(&src) {
            Outcome::Translated(t) => {
                let data: BTreeMap<String, String> =
                    serde_json::from_str(&std::fs::read_to_string(case.join("data.json")).unwrap())
                        .unwrap();
                let prefix = std::fs::read_to_string(case.join("prefix")).unwrap_or_default();
                let view = crate::cmd::render::view_of(&crate::keys::join(prefix.trim(), ""), data);
                let p = case.join("..").join("..").join("x.tera");
                let tmp = tempfile::tempdir().unwrap();
                let p2 = tmp.path().join("t.tera");
                let _ = p;
                std::fs::write(&p2, &t).unwrap();
                let got = Template::load(&p2)
                    .map_err(|e| e.to_string())
                    .and_then(|t| t.render(Arc::new(view)).map_err(|e| e.to_string()));
                let exp = std::fs::read_to_string(case.join("expected")).ok();
                let ok = match (&got, &exp) {
                    (Ok(g), Some(e)) => g == e,
                    (Err(_), None) => true,
                    _ => false,
                };
                println!(
                    "{} TRANSLATED {}",
                    case.file_name().unwrap().to_string_lossy(),
                    if ok { "OK" } else { "MISMATCH" }
                );
                if !ok {
                    println!("--- tera:\n{t}\n--- got: {got:?}\n--- exp: {exp:?}");
                }
            }
            Outcome::Refused(r) => println!(
                "{} REFUSED {r}",
                case.file_name().unwrap().to_string_lossy()
            ),
            Outcome::Invalid(m) => println!(
                "{} INVALID {m}",
                case.file_name().unwrap().to_string_lossy()
            ),
        }
    }
}
