//! `reconfd render --template FILE --data FILE`: renders one template from a data file, no
//! etcd. The data file is a flat mapping of full keys to values in JSON, TOML or YAML.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::exit;
use crate::keys;
use crate::store::KvView;
use crate::template::Template;

/// Renders to stdout; exit 1 on a data or template error, which is printed.
pub fn run(template: &Path, data: &Path, prefix: Option<&str>) -> u8 {
    let result = load_data(data).and_then(|entries| {
        let prefix = keys::join(prefix.unwrap_or(""), "");
        let view = view_of(&prefix, entries);
        let t = Template::load(template).map_err(|e| e.to_string())?;
        t.render(Arc::new(view)).map_err(|e| e.to_string())
    });
    match result {
        Ok(out) => {
            print!("{out}");
            exit::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            exit::FAILED
        }
    }
}

/// The view a template sees for `entries` (full keys) under `prefix`.
pub fn view_of(prefix: &str, entries: BTreeMap<String, String>) -> KvView {
    let snapshot = crate::store::Snapshot {
        kvs: entries.into_iter().collect(),
        ..Default::default()
    };
    snapshot.view(prefix, &[prefix.to_owned()])
}

/// Reads a flat key → value mapping; the format follows the extension.
pub fn load_data(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read data file: {e}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let value: serde_json::Value = match ext {
        "json" => serde_json::from_str(&text)
            .map_err(|e| format!("{}:{}: {e}", path.display(), e.line()))?,
        "toml" => toml::from_str::<toml::Value>(&text)
            .map_err(|e| crate::diag::Diagnostic::from_toml(path, &text, &e).to_string())
            .and_then(|v| {
                serde_json::to_value(v).map_err(|e| format!("{}: {e}", path.display()))
            })?,
        "yaml" | "yml" => serde_saphyr::from_str(&text).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line());
            format!("{}:{line}: {e}", path.display())
        })?,
        _ => {
            return Err(format!(
                "{}: data file must end in .json, .toml, .yaml or .yml",
                path.display()
            ))
        }
    };
    let serde_json::Value::Object(map) = value else {
        return Err(format!(
            "{}: data must be a mapping of keys to values",
            path.display()
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "{}: key {k:?}: value must be a string, number or boolean",
                    path.display()
                ))
            }
        };
        out.insert(keys::join("", &k), s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_formats_agree() {
        let d = tempfile::tempdir().unwrap();
        let files = [
            ("d.json", r#"{"/services/a": "1.1.1.1:80", "/n": 3}"#),
            ("d.toml", "\"/services/a\" = \"1.1.1.1:80\"\n\"/n\" = 3\n"),
            ("d.yaml", "/services/a: 1.1.1.1:80\n/n: 3\n"),
        ];
        for (name, text) in files {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            let m = load_data(&p).unwrap();
            assert_eq!(
                m.get("/services/a").map(String::as_str),
                Some("1.1.1.1:80"),
                "{name}"
            );
            assert_eq!(m.get("/n").map(String::as_str), Some("3"), "{name}");
        }
    }

    #[test]
    fn yaml_errors_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("d.yaml");
        std::fs::write(&p, "/a: 1\n/b: [unclosed\n").unwrap();
        let e = load_data(&p).unwrap_err();
        assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
        std::fs::write(&p, "- just\n- a list\n").unwrap();
        assert!(load_data(&p).unwrap_err().contains("mapping"));
    }

    #[test]
    fn nested_value_is_an_error_naming_the_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("d.json");
        std::fs::write(&p, r#"{"/a": {"b": 1}}"#).unwrap();
        assert!(load_data(&p).unwrap_err().contains("\"/a\""));
    }

    #[test]
    fn view_strips_prefix() {
        let m = BTreeMap::from([
            ("/dc1/a".to_string(), "x".to_string()),
            ("/dc2/a".to_string(), "y".to_string()),
        ]);
        let v = view_of("/dc1", m);
        assert_eq!(
            v.entries,
            BTreeMap::from([("/a".to_string(), "x".to_string())])
        );
    }
}
