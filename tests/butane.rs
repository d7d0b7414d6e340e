//! The Butane config (packaging/coreos/reconfd.bu) and the Ignition JSON beside it
//! (reconfd.ign) say the same thing, and the JSON is a valid Ignition config.
//!
//! Butane is not packaged for Debian, so this test translates the subset of Butane the file
//! uses (directories, files with `local` or `source` contents, units with drop-ins) itself,
//! as Butane documents it, and compares the meaning of both: paths, modes, the bytes each
//! file gets (data URLs decoded), units. `REGENERATE=1 cargo test --test butane` rewrites
//! reconfd.ign from reconfd.bu. Debian's `ignition-validate` (package `ignition`) checks the
//! JSON; under `CI=true` its absence fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Butane's variant and version to the Ignition spec version they produce.
fn ignition_version(variant: &str, version: &str) -> &'static str {
    match (variant, version) {
        ("fcos", "1.4.0") | ("flatcar", "1.0.0") => "3.3.0",
        ("fcos", "1.5.0") | ("flatcar", "1.1.0") => "3.4.0",
        other => panic!("this test knows no Butane {other:?}; add its Ignition version"),
    }
}

/// RFC 2397 `data:,` URL with every byte but the unreserved ones percent-encoded.
fn data_url(bytes: &[u8]) -> String {
    let mut out = String::from("data:,");
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The bytes of a `data:` URL (`;base64` or percent-encoded); `None` for other schemes.
fn decode_data_url(url: &str) -> Option<Vec<u8>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    if meta.ends_with(";base64") {
        return Some(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .expect("bad base64 in data URL"),
        );
    }
    let b = data.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("bad percent escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn yaml_to_json(v: &Value) -> Value {
    v.clone()
}

/// Translates the Butane file at `bu` (local contents read under `files_dir`) to Ignition.
fn translate(bu: &Path, files_dir: &Path) -> Value {
    let text = std::fs::read_to_string(bu).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    let variant = s(&doc["variant"]);
    let version = s(&doc["version"]);
    let mut out = Map::new();
    out.insert(
        "ignition".into(),
        json!({"version": ignition_version(&variant, &version)}),
    );
    let known_top = ["variant", "version", "storage", "systemd"];
    for (k, _) in doc.as_object().unwrap() {
        assert!(
            known_top.contains(&k.as_str()),
            "this test does not translate Butane's {k:?}"
        );
    }
    let storage = &doc["storage"];
    let mut st = Map::new();
    if let Some(dirs) = storage["directories"].as_array() {
        st.insert(
            "directories".into(),
            dirs.iter().map(yaml_to_json).collect::<Vec<_>>().into(),
        );
    }
    if let Some(files) = storage["files"].as_array() {
        let files: Vec<Value> = files
            .iter()
            .map(|f| {
                let mut f = yaml_to_json(f);
                let contents = f["contents"].as_object_mut().unwrap();
                if let Some(local) = contents.remove("local") {
                    let path = files_dir.join(local.as_str().unwrap());
                    let bytes =
                        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    contents.insert("source".into(), data_url(&bytes).into());
                } else if let Some(inline) = contents.remove("inline") {
                    contents.insert(
                        "source".into(),
                        data_url(inline.as_str().unwrap().as_bytes()).into(),
                    );
                }
                f
            })
            .collect();
        st.insert("files".into(), files.into());
    }
    if !st.is_empty() {
        out.insert("storage".into(), st.into());
    }
    if !doc["systemd"].is_null() {
        out.insert("systemd".into(), yaml_to_json(&doc["systemd"]));
    }
    out.into()
}

/// What an Ignition config means here: every file's data URL decoded, so Butane's own
/// encodings (base64, percent) compare equal to ours.
fn meaning(mut ign: Value) -> Value {
    if let Some(files) = ign["storage"]["files"].as_array_mut() {
        for f in files {
            assert!(
                f["contents"]["compression"].is_null(),
                "compressed contents: translate without compression to compare"
            );
            let source = f["contents"]["source"].as_str().unwrap().to_owned();
            if let Some(bytes) = decode_data_url(&source) {
                f["contents"]["source"] = Value::String(
                    String::from_utf8(bytes).unwrap_or_else(|e| format!("{:?}", e.as_bytes())),
                );
            }
        }
    }
    ign
}

#[test]
fn butane_source_and_ignition_json_agree() {
    let bu = root().join("packaging/coreos/reconfd.bu");
    let ign_path = root().join("packaging/coreos/reconfd.ign");
    let expected = translate(&bu, &root());
    if std::env::var_os("REGENERATE").is_some() {
        let text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
        std::fs::write(&ign_path, text).unwrap();
    }
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&ign_path)
            .unwrap_or_else(|e| panic!("{}: {e}", ign_path.display())),
    )
    .unwrap();
    assert_eq!(
        meaning(committed),
        meaning(expected),
        "{} no longer says what {} says (or a file it places changed): REGENERATE=1 cargo test --test butane",
        ign_path.display(),
        bu.display()
    );
}

/// The JSON places what the brief asks: the binary, the config, a resource and its template,
/// the packaged unit, enabled, with a drop-in for the binary's path; and the config it
/// places is one `reconfd check` accepts.
#[test]
fn ignition_places_binary_config_resource_and_enabled_unit() {
    let ign: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("packaging/coreos/reconfd.ign")).unwrap(),
    )
    .unwrap();
    let ign = meaning(ign);
    let file = |path: &str| -> &Value {
        ign["storage"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} is not placed"))
    };
    let bin = file("/usr/local/bin/reconfd");
    assert_eq!(bin["mode"], 0o755);
    assert!(bin["contents"]["source"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    let unit = file("/etc/systemd/system/reconfd.service");
    assert_eq!(
        unit["contents"]["source"].as_str().unwrap(),
        std::fs::read_to_string(root().join("systemd/reconfd.service")).unwrap()
    );
    let toml = file("/etc/reconfd/reconfd.toml")["contents"]["source"]
        .as_str()
        .unwrap();
    assert!(toml.contains("prefix = \"/hosts/%H\""), "{toml}");
    file("/etc/reconfd/conf.d/motd.toml");
    file("/etc/reconfd/templates/motd.tera");
    let units = ign["systemd"]["units"].as_array().unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!(units[0]["name"], "reconfd.service");
    assert_eq!(units[0]["enabled"], true);
    let dropin = units[0]["dropins"][0]["contents"].as_str().unwrap();
    assert!(
        dropin.contains("ExecStart=\nExecStart=/usr/local/bin/reconfd run\n"),
        "{dropin}"
    );

    // The placed configuration checks, with this host playing a fleet member.
    let dir = tempfile::tempdir().unwrap();
    for sub in ["conf.d", "templates"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let out = dir.path().join("motd.d");
    std::fs::create_dir(&out).unwrap();
    let place = |from: &str, to: &str, edit: &dyn Fn(&str) -> String| {
        let text = file(from)["contents"]["source"].as_str().unwrap();
        std::fs::write(dir.path().join(to), edit(text)).unwrap();
    };
    place("/etc/reconfd/reconfd.toml", "reconfd.toml", &|t| {
        t.to_owned()
    });
    place("/etc/reconfd/conf.d/motd.toml", "conf.d/motd.toml", &|t| {
        t.replace("/etc/motd.d", &out.display().to_string())
    });
    place(
        "/etc/reconfd/templates/motd.tera",
        "templates/motd.tera",
        &|t| t.to_owned(),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_reconfd"))
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("reconfd.toml"))
        .arg("--confdir")
        .arg(dir.path())
        .env("RECONFD_HOSTNAME", "web1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("prefix /hosts/web1, watches /hosts/web1/motd"),
        "{stdout}"
    );
}

#[test]
fn ignition_validate_accepts_the_json() {
    let Ok(o) = Command::new("ignition-validate")
        .arg(root().join("packaging/coreos/reconfd.ign"))
        .output()
    else {
        let msg = "ignition-validate is not installed (Debian: apt-get install ignition; .ci/install-deps)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("SKIPPED: {msg}");
        return;
    };
    assert!(
        o.status.success(),
        "ignition-validate: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn data_urls_round_trip() {
    let bytes = b"a b/%\n\xff[x]";
    assert_eq!(decode_data_url(&data_url(bytes)).unwrap(), bytes);
    assert_eq!(
        decode_data_url("data:;base64,aGVsbG8K").unwrap(),
        b"hello\n"
    );
    assert_eq!(decode_data_url("https://x"), None);
}
