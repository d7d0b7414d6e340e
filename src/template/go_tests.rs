//! Tests of the Go-template engine through the public `Template` API: the adapter's Go
//! shapes and errors. Byte-for-byte fidelity with Go is tested by the corpus in
//! tests/gotemplate/, whose expected outputs come from Go itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{EngineKind, Template};
use crate::store::KvView;

fn load(name: &str, source: &str) -> Result<Template, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, source).unwrap();
    Template::load(&path).map_err(|e| e.to_string())
}

fn try_render(source: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
    let t = load("t.tmpl", source)?;
    let entries: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    t.render(Arc::new(KvView::new(7, "/dc1", entries)))
        .map_err(|e| e.to_string())
}

fn render(source: &str, pairs: &[(&str, &str)]) -> String {
    try_render(source, pairs).unwrap_or_else(|e| panic!("render failed: {e}"))
}

fn render_err(source: &str, pairs: &[(&str, &str)]) -> String {
    match try_render(source, pairs) {
        Ok(out) => panic!("expected an error, rendered {out:?}"),
        Err(e) => e,
    }
}

const WEB: &[(&str, &str)] = &[
    ("/services/web/b", "10.0.0.2:80"),
    ("/services/web/a", "10.0.0.1:80"),
    ("/cfg", r#"{"port": 8080, "name": "x", "tags": ["a", "b"]}"#),
];

#[test]
fn tmpl_files_use_the_go_engine_and_others_can_ask_for_it() {
    assert_eq!(EngineKind::for_path("a/n.tmpl".as_ref()), EngineKind::Go);
    assert_eq!(EngineKind::for_path("a/n.conf".as_ref()), EngineKind::Tera);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.conf");
    std::fs::write(&path, r#"{{getv "/k" "d"}}"#).unwrap();
    let t = Template::load_as(&path, EngineKind::Go).unwrap();
    let view = Arc::new(KvView::new(1, "/", BTreeMap::new()));
    assert_eq!(t.render(view).unwrap(), "d");
}

#[test]
fn store_functions_in_confd_shapes() {
    let src = r#"{{range getvs "/services/web/*"}}server {{.}};
{{end}}{{range gets "/services/web/*"}}{{.Key}}={{.Value}} {{end}}
{{with get "/services/web/a"}}{{.Value}}{{end}} {{exists "/cfg"}} {{exists "/nope"}} {{ls "/services/web"}} {{lsdir "/services"}}"#;
    assert_eq!(
        render(src, WEB),
        "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n\
         /services/web/a=10.0.0.1:80 /services/web/b=10.0.0.2:80 \n\
         10.0.0.1:80 true false [a b] [web]"
    );
}

#[test]
fn confd_argument_order() {
    assert_eq!(
        render(
            r#"{{replace "a-b-c" "-" "_" 1}} {{join (split "x,y" ",") "+"}} {{getv "/nope" "dflt"}} {{add 2 3}} {{div 7 2}} {{seq 2 4}} {{getenv "RECONFD_NOPE_UNSET" "e"}}"#,
            WEB
        ),
        "a_b-c x+y dflt 5 3 [2 3 4] e"
    );
}

#[test]
fn json_numbers_are_float64_like_encoding_json() {
    assert_eq!(
        render(
            r#"{{$c := json (getv "/cfg")}}{{$c.port}} {{printf "%.1f" $c.port}} {{index $c.tags 1}} {{$c.name}}"#,
            WEB
        ),
        "8080 8080.0 b x"
    );
}

#[test]
fn errors_name_template_line_and_column() {
    // Go's wording and location (column in bytes from 0); reconfd adds the full etcd key.
    let msg = render_err("ok\n  {{getv \"/missing\"}}", WEB);
    assert_eq!(
        msg.lines().next().unwrap(),
        format!(
            "{}: template: t.tmpl:2:4: executing \"t.tmpl\" at <getv \"/missing\">: error calling getv: key does not exist: /missing (etcd key \"/dc1/missing\")",
            msg.split(": template:").next().unwrap()
        )
    );
    let msg = render_err("a\nb {{if true}}\n{{atoi \"x\"}}{{end}}", WEB);
    assert!(
        msg.contains("t.tmpl:3:2: executing \"t.tmpl\" at <atoi \"x\">: error calling atoi: strconv.Atoi: parsing \"x\": invalid syntax"),
        "{msg}"
    );
    let msg = render_err(
        r#"{{define "T"}}{{getv "/gone"}}{{end}}x{{template "T"}}"#,
        WEB,
    );
    assert!(
        msg.contains("t.tmpl:1:16: executing \"T\" at <getv \"/gone\">: error calling getv"),
        "{msg}"
    );
}

#[test]
fn arguments_are_checked_like_go() {
    assert!(render_err(r#"{{getv}}"#, WEB)
        .contains("at <getv>: wrong number of args for getv: want at least 1 got 0"));
    assert!(
        render_err(r#"{{add 1 "2"}}"#, WEB).contains("at <\"2\">: expected integer; found \"2\"")
    );
    assert!(render_err(r#"{{$s := "2"}}{{add 1 $s}}"#, WEB)
        .contains("at <$s>: wrong type for value; expected int; got string"));
    assert!(render_err(r#"{{div 1 0}}"#, WEB)
        .contains("error calling div: runtime error: integer divide by zero"));
    assert!(render_err(r#"{{map "a"}}"#, WEB).contains("error calling map: invalid map call"));
    // A JSON null met through range is an empty `interface {}`, which Go names so.
    assert!(render_err(
        r#"{{range jsonArray "[null]"}}{{base64Encode .}}{{end}}"#,
        WEB
    )
    .contains("wrong type for value; expected string; got interface {}"));
    // Go's index lets an index equal to the length through to reflect, which panics.
    assert!(render_err(r#"{{index "a" 1}}"#, WEB)
        .contains("error calling index: reflect: string index out of range"));
    // No value beside a map is unequal, not an error (Go's isNil before comparability).
    assert_eq!(
        render(r#"{{eq . (json "{}")}} {{ne (map) .}}"#, WEB),
        "false true"
    );
    // A {{continue}} in an inner range's else goes on to the outer range's next element.
    assert_eq!(
        render(
            "{{range seq 1 2}}a{{range seq 1 0}}{{else}}{{continue}}{{end}}b{{end}}",
            WEB
        ),
        "aa"
    );
}

#[test]
fn unknown_functions_and_syntax_errors_fail_at_load() {
    let err = load("t.tmpl", "line\n{{if true}}{{nosuch 1}}{{end}}").unwrap_err();
    assert!(
        err.ends_with(r#"t.tmpl: template: t.tmpl:2: function "nosuch" not defined"#),
        "{err}"
    );
    let err = load("t.tmpl", "a\n{{getv \"/x\"").unwrap_err();
    assert!(err.ends_with("t.tmpl:2: unclosed action"), "{err}");
}

#[test]
fn a_stray_end_or_else_fails_at_load_instead_of_truncating() {
    let err = load("t.tmpl", "a\n{{if true}}b{{end}}{{end}}\nc").unwrap_err();
    assert!(
        err.ends_with("t.tmpl: template: t.tmpl:2: unexpected {{end}}"),
        "{err}"
    );
    let err = load("t.tmpl", "a\n{{- else}}\nc").unwrap_err();
    assert!(err.ends_with("t.tmpl:2: unexpected {{else}}"), "{err}");
    let err = load("t.tmpl", "{{define \"x\"}}y{{end}}{{end}}z").unwrap_err();
    assert!(err.ends_with("t.tmpl:1: unexpected {{end}}"), "{err}");
}

#[test]
fn markers_print_nothing_and_trimming_is_gos() {
    assert_eq!(
        render(
            "a  {{- \"b\" -}}  \n c{{/* x */}}d\n{{- range getvs \"/none/*\"}}x{{else}} e{{end}}",
            WEB
        ),
        "abcd e"
    );
}

#[test]
fn password_env_is_not_readable() {
    assert_eq!(
        render(r#"{{getenv "RECONFD_ETCD_PASSWORD" "hidden"}}"#, WEB),
        "hidden"
    );
}

#[test]
fn renders_on_many_threads_see_their_own_view() {
    let t = Arc::new(load("t.tmpl", r#"{{getv "/n"}}"#).unwrap());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                let mut e = BTreeMap::new();
                e.insert("/n".to_owned(), i.to_string());
                t.render(Arc::new(KvView::new(1, "/", e))).unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i.to_string());
    }
}

#[test]
fn scopes_and_break_are_checked_at_load_like_gos_parser() {
    for ok in [
        r#"{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}"#,
        r#"{{range $i, $v := getvs "/a/*"}}{{$i}}{{$v}}{{$}}{{end}}"#,
        r#"{{range getvs "/a/*"}}{{if true}}{{break}}{{else}}{{continue}}{{end}}{{end}}"#,
        r#"{{if $y := 1}}{{$z := 2}}{{else}}{{$y}}{{$z}}{{end}}"#,
        r#"{{define "T"}}{{$}}{{$a := 1}}{{$a}}{{end}}{{template "T"}}"#,
    ] {
        assert!(
            load("t.tmpl", ok).is_ok(),
            "{ok}: {:?}",
            load("t.tmpl", ok).err()
        );
    }
    for (bad, want) in [
        (
            r#"{{with $x := 1}}{{end}}{{$x}}"#,
            r#"t.tmpl:1: undefined variable "$x""#,
        ),
        (
            r#"{{$x := 1}}{{define "T"}}{{$x}}{{end}}"#,
            r#"t.tmpl:1: undefined variable "$x""#,
        ),
        (
            r#"{{range getvs "/a"}}{{else}}{{break}}{{end}}"#,
            "{{break}} outside {{range}}",
        ),
        (
            r#"{{if false}}{{continue}}{{end}}"#,
            "{{continue}} outside {{range}}",
        ),
    ] {
        let err = load("t.tmpl", bad).unwrap_err();
        assert!(err.contains(want), "{bad}: {err}");
    }
}
