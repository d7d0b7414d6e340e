//! Golden-directory render cases (zram-generator style). Each `tests/cases/NAME/` holds
//! `conf.d/*.toml`, `templates/`, `data.toml` (full etcd keys → values), optionally
//! `reconfd.toml`, and `expected/`: the exact files the pass must leave in the output
//! directory. `@OUT@` in a resource stands for that directory. A new case is a new directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reconfd::config::{Overrides, Settings};
use reconfd::reconciler::{self, InstallMode};
use reconfd::store::Snapshot;

fn copy_tree(from: &Path, to: &Path, out: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target, out);
        } else {
            let text = std::fs::read_to_string(e.path()).unwrap();
            std::fs::write(target, text.replace("@OUT@", &out.display().to_string())).unwrap();
        }
    }
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let e = e.unwrap();
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            );
        }
    }
    m
}

fn run_case(case: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let (conf, out) = (tmp.path().join("conf"), tmp.path().join("out"));
    std::fs::create_dir_all(&out).unwrap();
    copy_tree(case, &conf, &out);
    let config = conf.join("reconfd.toml");
    let settings = Settings::assemble(&Overrides {
        config: Some(if config.exists() {
            config
        } else {
            PathBuf::from("/dev/null")
        }),
        confdir: Some(conf.clone()),
        ..Default::default()
    })
    .map_err(|e| format!("{e:?}"))?;
    let loaded = reconciler::load(&settings);
    if !loaded.errors.is_empty() {
        return Err(format!("resource errors: {:?}", loaded.errors));
    }
    let data = reconfd::cmd::render::load_data(&conf.join("data.toml"))?;
    let snapshot = Snapshot {
        revision: 1,
        kvs: data.into_iter().collect(),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for p in loaded.prepared {
        let view = Arc::new(snapshot.view(&p.resource.prefix, &p.resource.watched()));
        rt.block_on(p.reconcile(view, InstallMode::default()))
            .map_err(|e| format!("{}: {e}", p.resource.name))?;
        check_mode(&p.resource)?;
    }
    let (got, want) = (files(&out), files(&case.join("expected")));
    if got != want {
        return Err(format!(
            "output differs\n--- expected\n{want:#?}\n+++ got\n{got:#?}"
        ));
    }
    Ok(())
}

/// The installed file carries the resource's `mode` (0644 when unset: the output directory
/// starts empty, so there is no live mode to keep).
fn check_mode(resource: &reconfd::resource::Resource) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let want = resource.mode.unwrap_or(reconfd::install::DEFAULT_MODE);
    let got = std::fs::metadata(&resource.dest)
        .map_err(|e| format!("{}: {}: {e}", resource.name, resource.dest.display()))?
        .permissions()
        .mode()
        & 0o7777;
    if got != want {
        return Err(format!(
            "{}: {} has mode {got:04o}, the resource asks for {want:04o}",
            resource.name,
            resource.dest.display()
        ));
    }
    Ok(())
}

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases under {}", root.display());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            run_case(c)
                .err()
                .map(|e| format!("{}: {e}", c.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
