//! Translator tests: the Tera text for Go snippets, the refusal reasons, and the property the
//! translator exists for: the translation renders exactly what the Go template renders under
//! reconfd's Go engine, for many generated stores.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{translate, Outcome, Refusal};
use crate::store::KvView;
use crate::template::{EngineKind, Template};

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

fn render(source: &str, kind: EngineKind, view: &Arc<KvView>) -> Result<String, String> {
    let name = match kind {
        EngineKind::Go => "t.tmpl",
        EngineKind::Tera => "t.tera",
    };
    Template::from_source(Path::new(name), source, kind)
        .map_err(|e| e.to_string())?
        .render(view.clone())
        .map_err(|e| e.to_string())
}

fn view(pairs: &[(&str, &str)]) -> Arc<KvView> {
    let entries: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Arc::new(KvView::new(1, "", entries))
}

/// Translates `go` and checks that both engines agree on every store in `stores`: the same
/// bytes, or both fail. Returns the Tera text.
fn assert_exact(go: &str, stores: &[Arc<KvView>]) -> String {
    let tera = tr(go);
    for store in stores {
        let want = render(go, EngineKind::Go, store);
        let got = render(&tera, EngineKind::Tera, store);
        match (&want, &got) {
            (Ok(w), Ok(g)) if w == g => {}
            (Err(_), Err(_)) => {}
            _ => panic!(
                "Go and Tera differ\n--- go:\n{go}\n--- tera:\n{tera}\n--- store: {:?}\n\
                 --- go render: {want:?}\n--- tera render: {got:?}",
                store.entries
            ),
        }
    }
    tera
}

// ---- the Tera text ----

#[test]
fn snippets_translate_to_this_tera() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{{getv "/k"}} {{getv "/k" "d"}}"#,
            r#"{{ getv(key="/k") }} {{ getv(key="/k", default="d") }}"#,
        ),
        (
            "{{range getvs \"/s/*\"}}server {{.}};\n{{end}}",
            "{% for item in getvs(pattern=\"/s/*\") %}server {{ item }};\n{% endfor %}",
        ),
        (
            r#"{{range $i, $kv := gets "/s/*"}}{{$i}}={{$kv.Key}}:{{.Value}}{{end}}"#,
            r#"{% for kv in gets(pattern="/s/*") %}{% set i = loop.index0 %}{{ i }}={{ kv.key }}:{{ kv.value }}{% endfor %}"#,
        ),
        (
            r#"{{range ls "/a"}}{{.}}{{else}}none{{end}}"#,
            r#"{% for item in ls(path="/a") %}{{ item }}{% else %}none{% endfor %}"#,
        ),
        (
            r#"{{if exists "/a"}}A{{else if eq (getv "/b") "x" "y"}}B{{else}}C{{end}}"#,
            r#"{% if exists(key="/a") %}A{% elif (getv(key="/b") == "x" or getv(key="/b") == "y") %}B{% else %}C{% endif %}"#,
        ),
        (
            r#"{{with getv "/m" ""}}motd {{.}}{{else}}none{{end}}"#,
            r#"{% set it = getv(key="/m", default="") %}{% if it %}motd {{ it }}{% else %}none{% endif %}"#,
        ),
        (
            r#"{{$n := 0}}{{range getvs "/p/*"}}{{$n = add $n 1}}{{end}}{{$n}}"#,
            r#"{% set n = 0 %}{% for item in getvs(pattern="/p/*") %}{% set_global n = add(a=n, b=1) %}{% endfor %}{{ n }}"#,
        ),
        (
            r#"{{$x := "a"}}{{range seq 1 2}}{{$x := "b"}}{{$x}}{{end}}{{$x}}"#,
            r#"{% set x = "a" %}{% for n in seq(start=1, end=2) %}{% set x_2 = "b" %}{{ x_2 }}{% endfor %}{{ x }}"#,
        ),
        (
            r#"{{join (getv "/h" | base | printf "/u/%s/*" | getvs) ","}}"#,
            r#"{{ join(list=getvs(pattern=("/u/" ~ base(path=getv(key="/h")) ~ "/*")), sep=",") }}"#,
        ),
        (
            r#"{{printf "%d:%v:%t%%" 5 true (not "")}} {{print 1 2 "a"}}{{println "x" 1}}"#,
            r#"{{ (5 ~ ":" ~ true ~ ":" ~ (false if "" else true) ~ "%") }} {{ (1 ~ " " ~ 2 ~ "a") }}{{ ("x" ~ " " ~ 1 ~ "\n") }}"#,
        ),
        (r#"{{printf "%d" 5}}"#, r#"{{ ("" ~ 5) }}"#),
        (
            r#"{{getvs "/a/*"}} {{len (split "a,b" ",")}} {{index (split "a,b" ",") 1}}"#,
            r#"{{ ("[" ~ join(list=getvs(pattern="/a/*"), sep=" ") ~ "]") }} {{ (split(s="a,b", sep=",") | length) }} {{ split(s="a,b", sep=",")[1] }}"#,
        ),
        (
            r#"{{or (getv "/a" "") "dflt"}} {{and 1 "x"}} {{(get "/k").Value}}"#,
            r#"{{ (getv(key="/a", default="") or "dflt") }} {{ (1 and "x") }} {{ get(key="/k")["value"] }}"#,
        ),
        (
            r#"{{range $s := lookupSRV "etcd" "tcp" "example.com"}}{{$s.Target}}:{{.Port}}{{end}}"#,
            r#"{% for s in lookupSRV(service="etcd", proto="tcp", name="example.com") %}{{ s.target }}:{{ s.port }}{% endfor %}"#,
        ),
        (
            r#"{{range $loop := split "a b" " "}}{{if eq $loop "b"}}{{break}}{{end}}{{$loop}}{{continue}}{{end}}"#,
            r#"{% for loop_ in split(s="a b", sep=" ") %}{% if (loop_ == "b") %}{% break %}{% endif %}{{ loop_ }}{% continue %}{% endfor %}"#,
        ),
    ];
    for (go, want) in cases {
        assert_eq!(tr(go), *want, "{go}");
    }
}

#[test]
fn text_is_go_text_with_tera_openers_escaped() {
    // Trim markers and comments are applied; the text is otherwise kept byte for byte.
    assert_eq!(
        tr("a \n{{- /* c */ -}}\n b {{- 1 }} c\r\n{{\"x\" -}}\t\n"),
        "ab{{ 1 }} c\r\n{{ \"x\" }}"
    );
    assert_eq!(
        tr("{% raw %}{{`{{`}}{# c #} x{"),
        "{{ \"{\" }}% raw %}{{ \"{{\" }}{{ \"{\" }}# c #} x{{ \"{\" }}"
    );
    assert_eq!(tr(""), "");
    // The Tera text renders the same as the Go text.
    let go = "{ {% {# {{`}}`}} {{\"{{%\"}} x{";
    assert_exact(go, &[view(&[])]);
}

// ---- refusals ----

#[test]
fn refusals_say_why_and_where() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("{{define \"x\"}}y{{end}}", (1, 3), "named templates"),
        ("a\n{{template \"x\"}}", (2, 12), "named templates"),
        ("{{json (getv \"/j\")}}", (1, 3), "json"),
        ("{{datetime}}", (1, 3), "time.Time"),
        ("x\n  {{ printf \"%5s\" \"a\" }}", (2, 6), "printf `%5`"),
        ("{{ printf \"%s\" 1 }}", (1, 4), "%s` of a int"),
        ("{{ printf \"%s %s\" \"a\" }}", (1, 4), "MISSING"),
        ("{{ printf \"%s\" \"a\" \"b\" }}", (1, 4), "EXTRA"),
        ("{{ len \"abc\" }}", (1, 4), "bytes"),
        ("{{ . }}", (1, 4), "nil data"),
        ("{{ $ }}", (1, 4), "nil data"),
        ("{{ .Key }}", (1, 4), "nil data"),
        ("{{ 1.5 }}", (1, 4), "number literal"),
        ("{{ 0x10 }}", (1, 4), "number literal"),
        ("{{ 'a' }}", (1, 4), "number literal"),
        ("{{ nil }}", (1, 4), "nil"),
        ("{{ ls \"/\" }}", (1, 4), "`/`"),
        ("{{ range ls (getv \"/d\") }}{{end}}", (1, 10), "literal"),
        (
            "{{ $l := getvs \"/a/*\" }}{{ reverse $l }}",
            (1, 28),
            "in place",
        ),
        (
            "{{ range reverse (gets \"/a/*\") }}{{end}}",
            (1, 10),
            "gets results",
        ),
        (
            "{{ range reverse (seq 1 3) }}{{end}}",
            (1, 10),
            "gets results and ints",
        ),
        ("{{ eq \"a\" 1 }}", (1, 4), "eq of string, int"),
        ("{{ lt true false }}", (1, 4), "lt of bool, bool"),
        (
            "{{ eq \"a\" \"b\" (getv \"/x\") }}",
            (1, 4),
            "third argument",
        ),
        (
            "{{range seq 1 2}}{{range seq 1 0}}{{else}}{{break}}{{end}}{{end}}",
            (1, 45),
            "range's else",
        ),
        ("{{ getv 1 }}", (1, 4), "argument key is a int"),
        ("{{ add 1 }}", (1, 4), "add with 1 argument"),
        ("{{ gets \"/a/*\" }}", (1, 4), "prints a memkv.KVPairs"),
        ("{{ get \"/a\" }}", (1, 4), "prints a memkv.KVPair"),
        ("{{ (get \"/a\").Nope }}", (1, 14), "field .Nope"),
        (
            "{{ if index (split \"a\" \",\") 3 }}{{end}}",
            (1, 7),
            "index out of range",
        ),
        ("{{ index (getvs \"/a/*\") -1 }}", (1, 4), "non-negative"),
        (
            "{{ (index (gets \"/a/*\") 1).Key }}",
            (1, 27),
            "index out of range",
        ),
        (
            "{{ getvs \"/a/*\" | join \",\" }}",
            (1, 19),
            "argument list is a string",
        ),
        (
            "{{$x := 1}}{{range seq 1 2}}{{$y := 1}}{{range seq 1 2}}{{$y = 2}}{{end}}{{end}}",
            (1, 59),
            "outer loop",
        ),
        (
            "{{ $x := 1 }}{{ $x = \"a\" }}",
            (1, 17),
            "assigns a string to $x",
        ),
        ("{{ html \"<\" }}", (1, 4), "html"),
        ("{{ slice \"abc\" 1 }}", (1, 4), "slice"),
        ("{{ range 3 }}{{end}}", (1, 10), "ranges over a int"),
    ];
    for (go, (line, col), why) in cases {
        let r = refused(go);
        assert!(r.reason.contains(why), "{go:?}: {r}");
        assert_eq!((r.line, r.col), (*line, *col), "{go:?}: {r}");
    }
}

#[test]
fn templates_go_cannot_parse_are_invalid() {
    for go in [
        "{{ if }}",
        "{{ getv \"/a\" ",
        "{{ range $a, $b, $c := x }}{{end}}",
        // Go's parser rejects these (the engine and the translator share it).
        "{{ nosuch 1 }}",
        "{{ $x }}",
        "{{ break }}",
        "{{ /* c */}}",
        "{{end}}",
        "a{{end}}b",
    ] {
        assert!(
            matches!(translate(go), Outcome::Invalid(_)),
            "{go:?}: {:?}",
            translate(go)
        );
    }
}

// ---- exactness: the Go engine and the translation agree on generated stores ----

/// Values that trip formatting, truthiness, numbers, sorting and escaping.
const VALUES: &[&str] = &[
    "",
    "a",
    "b",
    " x ",
    "0",
    "1",
    "-3",
    "10",
    "9",
    "007",
    "+5",
    "99999999999999999999",
    "true",
    "T",
    "no",
    "é",
    "ΑΣ",
    "straße",
    "ᾳ",
    "{{",
    "{% x %}",
    "a,b,,c",
    "x,y",
    "/x/y/",
    "10.0.0.1:80",
    "10.0.0.10:80",
    "%s",
    "\n",
    "aGk=",
    "=",
    "[",
    "*",
];

/// A random store over `keys`: each key present or not, with a random value.
fn random_store(rng: &mut StdRng, keys: &[&str]) -> Arc<KvView> {
    let mut pairs = Vec::new();
    for k in keys {
        if rng.random_bool(0.7) {
            pairs.push((*k, VALUES[rng.random_range(0..VALUES.len())]));
        }
    }
    view(&pairs)
}

fn stores(seed: u64, keys: &[&str], n: usize) -> Vec<Arc<KvView>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = vec![view(&[])];
    out.extend((0..n).map(|_| random_store(&mut rng, keys)));
    out
}

const SERVICE_KEYS: &[&str] = &[
    "/services/web/a",
    "/services/web/b",
    "/services/web/c",
    "/services/web/c/weight",
    "/services/db/x",
    "/services/db/y/z",
    "/services/db",
    "/subdomain/app1",
    "/subdomain/app2",
    "/upstream/app1/s1",
    "/upstream/app1/s2",
    "/upstream/app2/s1",
    "/upstream/app3/s1",
];

const SCALAR_KEYS: &[&str] = &["/a", "/b", "/c", "/n", "/m", "/list", "/flag"];

#[test]
fn store_functions_and_ranges_render_as_in_go() {
    let stores = stores(1, SERVICE_KEYS, 300);
    for go in [
        "upstream web {\n{{- range getvs \"/services/web/*\" }}\n    server {{ . }};\n{{- else }}\n    server 127.0.0.1:1 down;\n{{- end }}\n}\n",
        "{{range $i, $kv := gets \"/services/*/*\"}}{{if $i}},{{end}}{{$kv.Key}}={{.Value}} ({{base .Key}} in {{dir $kv.Key}}){{end}}",
        "{{range ls \"/services\"}}[{{.}}]{{end}} {{range lsdir \"/services/\"}}<{{.}}>{{end}} {{ls \"/services/web\"}} {{lsdir \"/services\"}}",
        "{{range $name := ls \"/subdomain\"}}upstream {{$name}} {\n{{range getvs (printf \"/upstream/%s/*\" $name)}}  server {{.}};\n{{end}}}\n{{end}}",
        "{{range gets \"/subdomain/*\"}}server_name {{.Value}}; proxy {{base .Key}}; {{end}}",
        "{{with get \"/services/db\"}}{{.Key}} -> {{.Value}}{{else}}no db{{end}}",
        "{{if exists \"/services/db\"}}{{getv \"/services/db\"}}{{else if exists \"/services/web/a\"}}web{{end}}",
        "{{getv \"/services/web/a\"}}",
        "{{(get \"/services/web/b\").Value}}|{{len (gets \"/services/web/*\")}}|{{len (ls \"/services\")}}",
        "{{range sortKVByLength (gets \"/services/*/*\")}}{{.Key}} {{end}}|{{range sortByLength (getvs \"/services/*/*\")}}{{.}} {{end}}",
        "{{range reverse (getvs \"/services/web/*\")}}{{.}} {{end}}|{{reverse (ls \"/services\")}}",
        "{{index (getvs \"/services/web/*\") 0}}",
        "{{range getvs (getv \"/services/db\" \"/services/web/*\")}}{{.}}{{end}}",
    ] {
        assert_exact(go, &stores);
    }
}

#[test]
fn expressions_render_as_in_go() {
    let stores = stores(2, SCALAR_KEYS, 400);
    for go in [
        // Truthiness, and/or returning the deciding operand, not.
        "{{if getv \"/a\" \"\"}}A{{end}}{{if not (getv \"/b\" \"\")}}!B{{end}} {{or (getv \"/a\" \"\") (getv \"/b\" \"\") \"none\"}} {{and (getv \"/a\" \"\") (getv \"/b\" \"\")}}",
        "{{or (getv \"/a\" \"\") 0}} {{and (exists \"/a\") (getv \"/a\")}} {{or (exists \"/b\") (getv \"/b\")}}",
        "{{if and (exists \"/a\") (not (exists \"/b\"))}}a-only{{else if or (exists \"/b\") (exists \"/c\")}}b-or-c{{else}}none{{end}}",
        // Comparisons.
        "{{eq (getv \"/a\" \"\") \"a\" \"b\" \"\"}} {{ne (getv \"/a\" \"\") (getv \"/b\" \"\")}} {{lt (getv \"/a\" \"\") (getv \"/b\" \"\")}} {{ge (getv \"/a\" \"\") \"b\"}}",
        "{{lt (atoi (getv \"/n\")) (atoi (getv \"/m\"))}} {{eq (atoi (getv \"/n\")) 10}} {{le (len (split (getv \"/list\" \"\") \",\")) 2}}",
        "{{eq (parseBool (getv \"/flag\")) true}}",
        // Numbers.
        "{{add (atoi (getv \"/n\")) 1}} {{sub 1 (atoi (getv \"/m\"))}} {{mul (atoi (getv \"/n\")) -2}} {{div (atoi (getv \"/n\")) (atoi (getv \"/m\"))}} {{mod (atoi (getv \"/n\")) (atoi (getv \"/m\"))}}",
        "{{range seq 1 (atoi (getv \"/n\"))}}{{.}},{{else}}empty{{end}} {{seq (atoi (getv \"/m\")) 3}}",
        // Strings.
        "{{split (getv \"/list\") \",\"}} {{join (split (getv \"/list\" \"\") \",\") \"|\"}} {{len (split (getv \"/a\" \"\") \"\")}}",
        "{{toUpper (getv \"/a\" \"\")}} {{toLower (getv \"/b\" \"\")}} {{getv \"/c\" \"\" | toUpper | toLower}}",
        "{{contains (getv \"/a\" \"\") (getv \"/b\" \"\")}} {{replace (getv \"/a\" \"\") (getv \"/b\" \"\") \"_\" -1}} {{replace (getv \"/list\" \"\") \",\" \";\" 1}} {{trimSuffix (getv \"/a\" \"\") \"/\"}}",
        "{{base64Encode (getv \"/a\" \"\")}} {{base64Decode (getv \"/b\" \"\")}}",
        "{{base (getv \"/a\" \"\")}} {{dir (getv \"/a\" \"\")}}",
        "{{index (split (getv \"/list\") \",\") 2}}",
        "{{getenv \"RECONFD_MIGRATE_TEST_UNSET\" (getv \"/a\" \"x\")}}{{getenv \"RECONFD_ETCD_PASSWORD\"}}",
        // Formatting.
        "{{printf \"%s=%d %v %v %t %%\" (getv \"/a\" \"\") (atoi (getv \"/n\" \"0\")) (exists \"/b\") (split (getv \"/list\" \"\") \",\") true}}",
        "{{print (getv \"/a\" \"\") 1 2 (getv \"/b\" \"\") true}}|{{println (getv \"/a\" \"\") 3}}|{{print}}|{{println}}|{{print (or (getv \"/a\" \"\") 7)}}",
        "{{printf \"%v\" (or (getv \"/a\" \"\") 0)}} {{printf \"literal only\"}}",
    ] {
        assert_exact(go, &stores);
    }
}

#[test]
fn variables_and_control_flow_render_as_in_go() {
    let stores = stores(3, SERVICE_KEYS, 200);
    for go in [
        "{{$count := 0}}{{$last := \"none\"}}{{range getvs \"/services/*/*\"}}{{$count = add $count 1}}{{$last = .}}{{end}}{{$count}} {{$last}}",
        "{{$x := \"outer\"}}{{range ls \"/services\"}}{{$x := .}}{{$x = printf \"%s!\" $x}}{{$x}}{{end}} {{$x}}",
        "{{range $i, $s := ls \"/services\"}}{{range $j, $t := ls \"/subdomain\"}}{{$i}}.{{$j}}={{$s}}/{{$t}} {{end}}{{end}}",
        "{{range $i, $s := getvs \"/services/web/*\"}}{{if eq $s \"a\"}}{{continue}}{{end}}{{if eq $s \"b\"}}{{break}}{{end}}{{$i}}:{{$s}} {{end}}",
        "{{with $v := getv \"/services/db\" \"\"}}{{$v}}/{{.}}{{else}}{{with getv \"/services/web/a\" \"\"}}web {{.}}{{else}}nothing{{end}}{{end}}",
        "{{if $v := getv \"/services/db\" \"\"}}db={{$v}}{{else}}no db ({{$v}}){{end}}",
        "{{range $svc := lsdir \"/services\"}}{{$svc}}:{{range gets (printf \"/services/%s/*\" $svc)}} {{.Key}}{{end}};{{end}}",
        "{{- range getvs \"/services/web/*\" -}}\n  {{ . }}\n{{- end }}\n{{/* done */}}\nend",
    ] {
        assert_exact(go, &stores);
    }
}

// ---- exactness on generated templates ----

/// Generates random, mostly well-typed Go templates from the constructs the translator
/// handles, so combinations nobody wrote down get compared too.
struct Gen {
    rng: StdRng,
    /// Variables in scope: name and type ("s", "i", "b", "l").
    vars: Vec<(String, &'static str)>,
    /// The type of dot, inside range and with.
    dot: Option<&'static str>,
    n: usize,
}

const GEN_KEYS: &[&str] = &["/a", "/b", "/n", "/l", "/p/x", "/p/y", "/p/y/z", "/q/r"];

impl Gen {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn key(&mut self) -> String {
        format!("{:?}", self.pick(GEN_KEYS))
    }

    fn var(&mut self, ty: &str) -> Option<String> {
        let vs: Vec<String> = self
            .vars
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(n, _)| n.clone())
            .collect();
        (!vs.is_empty()).then(|| vs[self.rng.random_range(0..vs.len())].clone())
    }

    fn expr(&mut self, ty: &str, depth: u32) -> String {
        if self.rng.random_bool(0.25) {
            if let Some(v) = self.var(ty) {
                return v;
            }
        }
        if self.dot == Some(ty) && self.rng.random_bool(0.3) {
            return ".".into();
        }
        let leaf = depth == 0 || self.rng.random_bool(0.3);
        let d = depth.saturating_sub(1);
        match ty {
            "s" if leaf => match self.rng.random_range(0..3) {
                0 => format!("{:?}", self.pick(&["", "a", "x,y", "/p/", "é", "{{"])),
                1 => format!("getv {} {:?}", self.key(), self.pick(&["", "d", "1"])),
                _ => format!("getv {}", self.key()),
            },
            "s" => match self.rng.random_range(0..13) {
                0 => format!("base ({})", self.expr("s", d)),
                1 => format!("dir ({})", self.expr("s", d)),
                2 => format!("({} | toUpper)", self.expr("s", d)),
                3 => format!(
                    "replace ({}) {:?} ({}) {}",
                    self.expr("s", d),
                    self.pick(&["", ",", "a"]),
                    self.expr("s", d),
                    self.expr("i", 0)
                ),
                4 => format!(
                    "printf \"%s-%d\" ({}) ({})",
                    self.expr("s", d),
                    self.expr("i", d)
                ),
                5 => format!("join ({}) \"+\"", self.expr("l", d)),
                6 => format!("or ({}) ({})", self.expr("s", d), self.expr("s", d)),
                7 => format!("and ({}) ({})", self.expr("s", d), self.expr("s", d)),
                8 => format!("trimSuffix ({}) \"/\"", self.expr("s", d)),
                9 => format!("print ({}) ({})", self.expr("s", d), self.expr("i", d)),
                10 => format!(
                    "printf \"%v|%v\" ({}) ({})",
                    self.expr("l", d),
                    self.expr("b", d)
                ),
                11 => format!("println ({}) ({})", self.expr("b", d), self.expr("s", d)),
                _ => format!("{} | base64Encode", self.expr("s", d)),
            },
            "i" if leaf => self.pick(&["0", "1", "-2", "7"]).to_string(),
            "i" => match self.rng.random_range(0..5) {
                0 => format!("atoi ({})", self.expr("s", d)),
                1 => format!("add ({}) ({})", self.expr("i", d), self.expr("i", d)),
                2 => format!("len ({})", self.expr("l", d)),
                3 => format!("mod ({}) ({})", self.expr("i", d), self.expr("i", d)),
                _ => format!("mul ({}) {}", self.expr("i", d), self.expr("i", 0)),
            },
            "b" if leaf => format!("exists {}", self.key()),
            "b" => match self.rng.random_range(0..7) {
                0 => format!("eq ({}) ({})", self.expr("s", d), self.expr("s", d)),
                1 => format!("lt ({}) ({})", self.expr("i", d), self.expr("i", d)),
                2 => format!("not ({})", self.expr("l", d)),
                3 => format!("contains ({}) ({})", self.expr("s", d), self.expr("s", d)),
                4 => format!("ne ({}) ({})", self.expr("b", d), self.expr("b", d)),
                5 => format!(
                    "eq ({}) {:?} {:?}",
                    self.expr("s", d),
                    self.pick(&["a", ""]),
                    self.pick(&["1", "d"])
                ),
                _ => format!("parseBool ({})", self.expr("s", d)),
            },
            _ => match self.rng.random_range(0..6) {
                5 => format!("seq 1 ({})", self.expr("i", d)),
                0 => format!("getvs {:?}", self.pick(&["/p/*", "/*", "/q/*", "/p/*/*"])),
                1 => format!("split ({}) \",\"", self.expr("s", d)),
                2 => format!("ls {:?}", self.pick(&["/p", "/q/", "/nope"])),
                3 => format!("lsdir {:?}", self.pick(&["/p", "/q"])),
                _ => format!("reverse (getvs {:?})", self.pick(&["/p/*", "/*"])),
            },
        }
    }

    fn delims(&mut self) -> (&'static str, &'static str) {
        (
            if self.rng.random_bool(0.2) {
                "{{- "
            } else {
                "{{"
            },
            if self.rng.random_bool(0.2) {
                " -}}"
            } else {
                "}}"
            },
        )
    }

    fn body(&mut self, depth: u32, in_range: bool) -> String {
        let mut out = String::new();
        let mark = self.vars.len();
        for _ in 0..self.rng.random_range(1..4) {
            let (l, r) = self.delims();
            let ty = self.pick(&["s", "i", "b", "l"]);
            let stmt = match self.rng.random_range(0..11) {
                0..=2 => format!("{l}{}{r}", self.expr(ty, 2)),
                9 => format!(
                    "{l}index ({}) {}{r}",
                    self.expr("l", 1),
                    self.pick(&["0", "1"])
                ),
                10 if depth > 0 => {
                    let body = self.body(depth - 1, true);
                    format!(
                        "{l}range gets {:?}{r}{{{{.Key}}}}={{{{.Value}}}} {body}{{{{end}}}}",
                        self.pick(&["/p/*", "/*"])
                    )
                }
                3 if depth > 0 => {
                    let (l2, r2) = self.delims();
                    let cond = self.expr(ty, 1);
                    let body = self.body(depth - 1, in_range);
                    let alt = self.body(depth - 1, in_range);
                    let cond2 = self.expr("b", 1);
                    let mid = self.body(depth - 1, in_range);
                    format!(
                        "{l}if {cond}{r}{body}{l2}else if {cond2}{r2}{mid}{{{{else}}}}{alt}{{{{end}}}}"
                    )
                }
                4 if depth > 0 => {
                    let (list, elem) = if self.rng.random_bool(0.2) {
                        (format!("seq 1 ({})", self.expr("i", 1)), "i")
                    } else {
                        (self.expr("l", 1), "s")
                    };
                    self.n += 1;
                    let (i, v) = (format!("$i{}", self.n), format!("$v{}", self.n));
                    self.vars.push((i.clone(), "i"));
                    self.vars.push((v.clone(), elem));
                    let outer = self.dot.replace(elem);
                    let body = self.body(depth - 1, true);
                    self.dot = outer;
                    self.vars.truncate(self.vars.len() - 2);
                    let alt = self.body(depth - 1, in_range);
                    format!("{l}range {i}, {v} := {list}{r}{body}{{{{else}}}}{alt}{{{{end}}}}")
                }
                5 if depth > 0 => {
                    let val = self.expr(ty, 1);
                    let outer = self.dot.replace(ty);
                    let body = self.body(depth - 1, in_range);
                    self.dot = outer;
                    format!("{l}with {val}{r}{body}{{{{end}}}}")
                }
                6 => {
                    self.n += 1;
                    let name = format!("$x{}", self.n);
                    let val = self.expr(ty, 2);
                    self.vars.push((name.clone(), ty));
                    format!("{l}{name} := {val}{r}")
                }
                7 => match self.var(ty) {
                    Some(v) => format!("{l}{v} = {}{r}", self.expr(ty, 1)),
                    None => String::new(),
                },
                _ if in_range && self.rng.random_bool(0.3) => {
                    format!("{l}if {}{r}{{{{continue}}}}{{{{end}}}}", self.expr("b", 1))
                }
                _ => self
                    .pick(&[" ", "\n", "text ", "{ ", "}\n", "  \t\n"])
                    .to_owned(),
            };
            out.push_str(&stmt);
            out.push_str(self.pick(&["", " ", "\n", ";"]));
        }
        self.vars.truncate(mark);
        out
    }
}

#[test]
fn generated_templates_render_as_in_go() {
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed_from_env("GEN_SEED", 7)),
        vars: Vec::new(),
        dot: None,
        n: 0,
    };
    let stores = stores(4, GEN_KEYS, 25);
    let (mut translated, mut refused_n, mut rendered) = (0u64, 0u64, 0u64);
    // GEN_ITER=5000 cargo test generated_templates: a longer run than CI needs.
    let iterations = seed_from_env("GEN_ITER", 400);
    for _ in 0..iterations {
        let go = gen.body(3, false);
        let tera = match translate(&go) {
            Outcome::Translated(t) => t,
            Outcome::Refused(r) => {
                if std::env::var_os("GEN_SHOW").is_some() {
                    eprintln!("REFUSED {}", r.reason);
                }
                refused_n += 1;
                continue;
            }
            Outcome::Invalid(e) => panic!("generated an invalid template: {e}\n{go}"),
        };
        translated += 1;
        for store in &stores {
            let want = render(&go, EngineKind::Go, store);
            let got = render(&tera, EngineKind::Tera, store);
            match (&want, &got) {
                (Ok(w), Ok(g)) if w == g => rendered += 1,
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "Go and Tera differ\n--- go:\n{go}\n--- tera:\n{tera}\n--- store: {:?}\n\
                     --- go render: {want:?}\n--- tera render: {got:?}",
                    store.entries
                ),
            }
        }
    }
    eprintln!("STATS {translated} translated, {refused_n} refused, {rendered} renders");
    // The comparison must not be vacuous: most templates translate, many renders succeed.
    assert!(
        translated * 4 > iterations * 3,
        "{translated} translated, {refused_n} refused"
    );
    assert!(
        rendered > iterations * 5,
        "only {rendered} successful renders"
    );
}

fn seed_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Negative numbers against Tera's unsigned loop index, control characters, Unicode line
/// separators and delimiters inside strings come out as in Go.
#[test]
fn numbers_and_odd_characters_render_as_in_go() {
    let stores = [view(&[("/a", "x")])];
    for go in [
        "{{range $i, $v := split \"a,b\" \",\"}}{{lt $i -1}}{{gt $i -1}}{{eq $i 0}}{{ne $i -5}}{{le -3 $i}}{{end}}",
        "{{ \"\\x00\\x0b\\x7f\\u2028\" }}|{{ `a\tb` }}|{{ $x := \"%}\" }}{{ $x }}{{ \"#}\" }}",
        "\u{0}\u{b}text\u{2028}{{ \"x\" }}",
        "{{ printf \"%v%v\" -1 0 }}{{ print -1 -2 }}",
    ] {
        assert_exact(go, &stores);
    }
}

/// Assigning a variable never changes dot, even where dot came from that variable.
#[test]
fn assigning_a_variable_leaves_dot_alone() {
    let stores = stores(5, SERVICE_KEYS, 30);
    for go in [
        "{{$x := \"a\"}}{{with $x}}{{$x = \"b\"}}{{.}}{{$x}}{{end}}",
        "{{range $v := ls \"/services\"}}{{$v = \"z\"}}{{.}}{{$v}} {{end}}",
        "{{range $i, $v := ls \"/services\"}}{{$v = printf \"%s!\" .}}{{.}}{{$v}}{{$i = 7}}{{$i}} {{end}}",
        "{{with $w := getv \"/services/db\" \"none\"}}{{$w = \"x\"}}{{.}}{{$w}}{{end}}",
    ] {
        assert_exact(go, &stores);
    }
}

/// Trim markers around comments and non-ASCII spaces: the translation holds Go's text, read
/// by the same parser as the Go engine's.
#[test]
fn trimmed_text_around_comments_translates_exactly() {
    for go in [
        "a {{- /* c */}} b",
        "a {{- /* c */ -}} b",
        "a {{/* c */ -}} \n b",
        "a\u{a0}{{- 1 -}}\u{a0}b",
    ] {
        assert_exact(go, &[view(&[])]);
    }
}
