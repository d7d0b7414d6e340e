//! Tests of the Tera engine and confd's function set, through the public `Template` API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Template, TemplateError};
use crate::store::KvView;

/// Writes `source` to a temporary file called `name` and loads it.
fn load(name: &str, source: &str) -> (tempfile::TempDir, Result<Template, TemplateError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, source).unwrap();
    let t = Template::load(&path);
    (dir, t)
}

fn view_with_prefix(prefix: &str, pairs: &[(&str, &str)]) -> Arc<KvView> {
    let entries: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Arc::new(KvView::new(42, prefix, entries))
}

/// Renders `source` (as `t.conf`) against `pairs`, prefix `/dc1`.
fn try_render(source: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
    let (_dir, t) = load("t.conf", source);
    let t = t.map_err(|e| e.to_string())?;
    t.render(view_with_prefix("/dc1", pairs))
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

const APACHE: &[(&str, &str)] = &[
    ("/services/apache/a", "10.0.0.9:80"),
    ("/services/apache/b", "10.0.0.1:80"),
    ("/services/apache/c", "10.0.0.10:80"),
    ("/services/apache/c/x", "nested"),
];

// ---- store functions ----

#[test]
fn getv_reads_the_view_and_takes_a_default() {
    assert_eq!(
        render(r#"{{ getv(key="/services/apache/a") }}"#, APACHE),
        "10.0.0.9:80"
    );
    assert_eq!(
        render(r#"{{ getv(key="/nope", default="x") }}"#, APACHE),
        "x"
    );
    assert_eq!(
        render(r#"[{{ getv(key="/nope", default="") }}]"#, APACHE),
        "[]"
    );
    // A present key wins over the default.
    assert_eq!(
        render(
            r#"{{ getv(key="/services/apache/b", default="x") }}"#,
            APACHE
        ),
        "10.0.0.1:80"
    );
}

#[test]
fn missing_key_names_both_keys_file_and_line() {
    let src = "upstream {\n  a\n  {{ getv(key=\"/services/apache/nokey\") }}\n}\n";
    let (dir, t) = load("nginx.conf", src);
    let err = t
        .unwrap()
        .render(view_with_prefix("/dc1", APACHE))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(
            r#"key does not exist: /services/apache/nokey (etcd key "/dc1/services/apache/nokey")"#
        ),
        "{msg}"
    );
    assert!(
        msg.contains("nginx.conf:3:"),
        "line 3 should be reported: {msg}"
    );
    assert!(
        msg.starts_with(&dir.path().join("nginx.conf").display().to_string()),
        "{msg}"
    );
    assert!(matches!(err, TemplateError::Engine { .. }));
    // get fails the same way.
    let msg = render_err("\n{{ get(key=\"/x\") }}", &[]);
    assert!(
        msg.contains(r#"get: key does not exist: /x (etcd key "/dc1/x")"#),
        "{msg}"
    );
    assert!(msg.contains("t.conf:2:"), "{msg}");
}

#[test]
fn getvs_sorts_by_value_gets_by_key() {
    assert_eq!(
        render(
            r#"{{ getvs(pattern="/services/apache/*") | join(sep=",") }}"#,
            APACHE
        ),
        "10.0.0.10:80,10.0.0.1:80,10.0.0.9:80"
    );
    assert_eq!(
        render(
            r#"{% for kv in gets(pattern="/services/apache/*") %}{{ kv.key }}={{ kv.value }};{% endfor %}"#,
            APACHE
        ),
        "/services/apache/a=10.0.0.9:80;/services/apache/b=10.0.0.1:80;/services/apache/c=10.0.0.10:80;"
    );
    assert_eq!(
        render(r#"{{ getvs(pattern="/none/*") | length }}"#, APACHE),
        "0"
    );
}

#[test]
fn get_returns_key_and_value() {
    assert_eq!(
        render(
            r#"{% set kv = get(key="/services/apache/a") %}{{ kv.key }} {{ kv.value }}"#,
            APACHE
        ),
        "/services/apache/a 10.0.0.9:80"
    );
}

#[test]
fn glob_rules_in_templates() {
    let data = &[
        ("/a/x1", "1"),
        ("/a/x2", "2"),
        ("/a/y", "3"),
        ("/a/x1/deep", "4"),
        ("/a/[x]", "5"),
    ];
    assert_eq!(
        render(r#"{{ getvs(pattern="/a/x?") | join(sep=",") }}"#, data),
        "1,2"
    );
    assert_eq!(
        render(r#"{{ getvs(pattern="/a/[^x]") | join(sep=",") }}"#, data),
        "3"
    );
    assert_eq!(
        render(r#"{{ getvs(pattern="/a/*/deep") | join(sep=",") }}"#, data),
        "4"
    );
    assert_eq!(
        render(r#"{{ getvs(pattern="/a/\\[x\\]") | join(sep=",") }}"#, data),
        "5"
    );
    assert_eq!(render(r#"{{ getvs(pattern="/*") | length }}"#, data), "0");
    let msg = render_err(r#"{{ getvs(pattern="/a/[") }}"#, data);
    assert!(
        msg.contains(r#"getvs: syntax error in pattern "/a/[""#),
        "{msg}"
    );
    let msg = render_err(r#"{{ gets(pattern="[]a]") }}"#, &[]);
    assert!(msg.contains("syntax error in pattern"), "{msg}");
}

#[test]
fn ls_lsdir_exists() {
    let data = &[
        ("/svc/a/x", "1"),
        ("/svc/a/y/z", "2"),
        ("/svc/b", "3"),
        ("/svcx/c", "4"),
    ];
    assert_eq!(
        render(r#"{{ ls(path="/svc") | join(sep=",") }}"#, data),
        "a,b"
    );
    assert_eq!(
        render(r#"{{ ls(path="/svc/a/") | join(sep=",") }}"#, data),
        "x,y"
    );
    assert_eq!(
        render(r#"{{ lsdir(path="/svc") | join(sep=",") }}"#, data),
        "a"
    );
    assert_eq!(
        render(r#"{{ lsdir(path="/svc/a") | join(sep=",") }}"#, data),
        "y"
    );
    assert_eq!(
        render(
            r#"{{ exists(key="/svc/b") }} {{ exists(key="/svc") }}"#,
            data
        ),
        "true false"
    );
}

#[test]
fn unknown_and_missing_arguments_are_errors() {
    let msg = render_err(r#"{{ getv(key="/a", defualt="x") }}"#, &[]);
    assert!(
        msg.contains("getv: unknown argument `defualt` (arguments: `key`, `default`)"),
        "{msg}"
    );
    let msg = render_err(r#"{{ getv(name="/a") }}"#, &[]);
    assert!(msg.contains("unknown argument `name`"), "{msg}");
    let msg = render_err(r#"{{ getvs() }}"#, &[]);
    assert!(msg.contains("getvs: missing argument `pattern`"), "{msg}");
    let msg = render_err(r#"{{ add(a="1", b=2) }}"#, &[]);
    assert!(
        msg.contains("add: argument `a` must be an integer"),
        "{msg}"
    );
}

// ---- engine behaviour ----

#[test]
fn autoescape_is_off_even_for_html_names() {
    let (_d, t) = load("x.html", r#"{{ getv(key="/k") }}"#);
    let out = t
        .unwrap()
        .render(view_with_prefix("", &[("/k", r#"<b>&"x"</b>"#)]))
        .unwrap();
    assert_eq!(out, r#"<b>&"x"</b>"#);
}

#[test]
fn unknown_function_fails_at_load_with_file_name() {
    let (dir, t) = load("proxy.conf", "line one\n{{ nosuchfn(key=1) }}\n");
    let msg = t.unwrap_err().to_string();
    assert!(
        msg.starts_with(&dir.path().join("proxy.conf").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("Unknown function `nosuchfn`"), "{msg}");
    assert!(msg.contains("proxy.conf:2:"), "{msg}");
}

#[test]
fn syntax_errors_and_positional_args_fail_at_load() {
    let (_d, t) = load("s.conf", "\n\n{{ getv(\"/k\") }}");
    let msg = t.unwrap_err().to_string();
    assert!(msg.contains("s.conf:3:"), "{msg}");
    assert!(
        msg.contains(r#"hint: reconfd's functions take keyword arguments"#),
        "{msg}"
    );
}

#[test]
fn undefined_variables_are_errors() {
    let msg = render_err("{{ nope }}", &[]);
    assert!(msg.contains("nope"), "{msg}");
}

#[test]
fn unreadable_files() {
    let err = Template::load(&PathBuf::from("/nonexistent/x.conf")).unwrap_err();
    assert!(matches!(err, TemplateError::Read { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with("/nonexistent/x.conf: cannot read template"));
}

#[test]
fn each_render_sees_its_own_view_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    let (_d, t) = load(
        "t.conf",
        r#"{{ getv(key="/n") }}/{{ getvs(pattern="/*") | length }}"#,
    );
    let t = Arc::new(t.unwrap());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let n = i.to_string();
                    let v = view_with_prefix("", &[("/n", &n)]);
                    assert_eq!(t.render(v).unwrap(), format!("{i}/1"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn store_is_not_visible_after_render() {
    // A failed render must not leave its view installed for the next one.
    let (_d, t) = load("t.conf", r#"{{ getv(key="/k") }}{{ nope }}"#);
    let t = t.unwrap();
    assert!(t.render(view_with_prefix("", &[("/k", "1")])).is_err());
    let err = t.render(view_with_prefix("", &[])).unwrap_err().to_string();
    assert!(err.contains("key does not exist: /k"), "{err}");
}

// ---- helpers ----

#[test]
fn path_and_string_helpers() {
    let kv = &[("/k", "/services/apache/a")];
    assert_eq!(
        render(
            r#"{{ base(path="/a/b/") }} {{ dir(path="/a/b") }} {{ dir(path="/a") }}"#,
            &[]
        ),
        "b /a /"
    );
    assert_eq!(
        render(
            r#"{{ getv(key="/k") | base }} {{ getv(key="/k") | dir }}"#,
            kv
        ),
        "a /services/apache"
    );
    assert_eq!(
        render(r#"{{ split(s="a:b:c", sep=":") | join(sep="|") }}"#, &[]),
        "a|b|c"
    );
    assert_eq!(
        render(r#"{{ split(s="héh", sep="") | join(sep=",") }}"#, &[]),
        "h,é,h"
    );
    assert_eq!(
        render(
            r#"{{ "a:b" | split(sep=":") | last }} {{ "a-b" | split(pat="-") | first }}"#,
            &[]
        ),
        "b a"
    );
    assert_eq!(
        render(r#"{{ join(list=["a", "b", 3], sep=", ") }}"#, &[]),
        "a, b, 3"
    );
    assert_eq!(render(r#"{{ ["x", "y"] | join(sep="+") }}"#, &[]), "x+y");
    assert_eq!(
        render(r#"{{ toUpper(s="aBc") }} {{ toLower(s="aBc") }}"#, &[]),
        "ABC abc"
    );
    assert_eq!(
        render(r#"{{ "aBc" | toUpper }} {{ "aBc" | toLower }}"#, &[]),
        "ABC abc"
    );
    assert_eq!(
        render(
            r#"{{ contains(s="seafood", substr="foo") }} {{ contains(s="a", substr="b") }}"#,
            &[]
        ),
        "true false"
    );
    assert_eq!(
        render(
            r#"{{ replace(s="oink oink oink", old="k", new="ky", n=2) }}"#,
            &[]
        ),
        "oinky oinky oink"
    );
    assert_eq!(
        render(
            r#"{{ replace(s="oink oink", old="oink", new="moo") }}"#,
            &[]
        ),
        "moo moo"
    );
    assert_eq!(
        render(r#"{{ replace(s="aaa", old="a", new="b", n=0) }}"#, &[]),
        "aaa"
    );
    assert_eq!(
        render(
            r#"{{ trimSuffix(s="app.example.", suffix=".") }} {{ "x.conf" | trimSuffix(suffix=".conf") }}"#,
            &[]
        ),
        "app.example x"
    );
}

#[test]
fn json_and_map() {
    let kv = &[(
        "/cfg",
        r#"{"port": 8080, "host": "db", "tags": ["a", "b"], "tls": true, "x": null}"#,
    )];
    assert_eq!(
        render(
            r#"{% set c = json(s=getv(key="/cfg")) %}{{ c.host }}:{{ c.port }} {{ c.tags | join(sep=",") }} {{ c.tls }}"#,
            kv
        ),
        "db:8080 a,b true"
    );
    // Map keys iterate in sorted order, as Go templates range over maps.
    assert_eq!(
        render(
            r#"{% for k, v in getv(key="/cfg") | json %}{{ k }} {% endfor %}"#,
            kv
        ),
        "host port tags tls x "
    );
    assert_eq!(
        render(r#"{{ jsonArray(s="[1, \"two\"]") | join(sep=",") }}"#, &[]),
        "1,two"
    );
    assert_eq!(render(r#"{{ ("[3]" | jsonArray)[0] + 1 }}"#, &[]), "4");
    assert!(render_err(r#"{{ json(s="[1]") }}"#, &[]).contains("json: the JSON is not an object"));
    assert!(render_err(r#"{{ jsonArray(s="{") }}"#, &[]).contains("jsonArray: invalid JSON"));
    assert_eq!(
        render(
            r#"{% set m = map(pairs=["b", 2, "a", "x"]) %}{{ m.a }}{{ m.b }}{% for k, v in m %} {{ k }}{% endfor %}"#,
            &[]
        ),
        "x2 a b"
    );
    assert!(render_err(r#"{{ map(pairs=["a"]) }}"#, &[]).contains("even number"));
    assert!(render_err(r#"{{ map(pairs=[1, 2]) }}"#, &[]).contains("map keys must be strings"));
}

#[test]
fn getenv_and_datetime_and_file_exists() {
    // PATH is set for any test process; a made-up name is not.
    assert_ne!(render(r#"{{ getenv(name="PATH") }}"#, &[]), "");
    assert_eq!(
        render(r#"[{{ getenv(name="RECONFD_TEST_UNSET_VAR") }}]"#, &[]),
        "[]"
    );
    assert_eq!(
        render(
            r#"{{ getenv(name="RECONFD_TEST_UNSET_VAR", default="d") }}"#,
            &[]
        ),
        "d"
    );
    let now = render(r#"{{ datetime() }}"#, &[]);
    assert!(chrono::DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
    let utc = render(r#"{{ datetime(utc=true) }}"#, &[]);
    assert!(utc.ends_with('Z'), "{utc}");
    let year = render(r#"{{ datetime(format="%Y") }}"#, &[]);
    assert_eq!(year.len(), 4);
    assert!(render_err(r#"{{ datetime(format="%Q") }}"#, &[]).contains("invalid strftime format"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let src =
        format!(r#"{{{{ fileExists(path="{path}") }}}} {{{{ fileExists(path="{path}/nope") }}}}"#);
    assert_eq!(render(&src, &[]), "true false");
}

#[test]
fn numbers() {
    assert_eq!(
        render(r#"{{ seq(start=3, end=5) | join(sep=",") }}"#, &[]),
        "3,4,5"
    );
    assert_eq!(render(r#"{{ seq(start=5, end=3) | length }}"#, &[]), "0");
    assert!(render_err(r#"{{ seq(start=0, end=1000000) }}"#, &[])
        .contains("seq: would produce more than"));
    assert_eq!(
        render(r#"{{ atoi(s="-42") + 1 }} {{ "+7" | atoi }}"#, &[]),
        "-41 7"
    );
    assert!(render_err(r#"{{ atoi(s=" 1") }}"#, &[])
        .contains(r#"atoi: strconv.Atoi: parsing " 1": invalid syntax"#));
    assert_eq!(
        render(
            r#"{{ add(a=7, b=2) }} {{ sub(a=7, b=2) }} {{ mul(a=7, b=2) }} {{ div(a=7, b=2) }} {{ mod(a=7, b=2) }}"#,
            &[]
        ),
        "9 5 14 3 1"
    );
    // Go's integer division truncates toward zero and % keeps the dividend's sign.
    assert_eq!(
        render(r#"{{ div(a=-7, b=2) }} {{ mod(a=-7, b=2) }}"#, &[]),
        "-3 -1"
    );
    assert!(render_err(r#"{{ div(a=1, b=0) }}"#, &[])
        .contains("div: runtime error: integer divide by zero"));
    assert!(render_err(r#"{{ mod(a=1, b=0) }}"#, &[])
        .contains("mod: runtime error: integer divide by zero"));
    let kv = &[("/n", "41")];
    assert_eq!(
        render(r#"{{ add(a=atoi(s=getv(key="/n")), b=1) }}"#, kv),
        "42"
    );
}

#[test]
fn base64_and_parse_bool() {
    assert_eq!(
        render(r#"{{ base64Encode(s="hello, wörld") }}"#, &[]),
        "aGVsbG8sIHfDtnJsZA=="
    );
    assert_eq!(
        render(r#"{{ base64Decode(s="aGVsbG8sIHfDtnJsZA==") }}"#, &[]),
        "hello, wörld"
    );
    assert_eq!(
        render(r#"{{ "hi" | base64Encode | base64Decode }}"#, &[]),
        "hi"
    );
    assert_eq!(render("{{ base64Decode(s=\"aGVs\nbG8=\") }}", &[]), "hello");
    assert!(render_err(r#"{{ base64Decode(s="aGVsbG8") }}"#, &[])
        .contains("base64Decode: illegal base64 data at input byte"));
    assert!(render_err(r#"{{ base64Decode(s="/w==") }}"#, &[]).contains("not UTF-8"));
    for t in ["1", "t", "T", "TRUE", "true", "True"] {
        assert_eq!(
            render(&format!(r#"{{{{ parseBool(s="{t}") }}}}"#), &[]),
            "true"
        );
    }
    for f in ["0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(
            render(&format!(r#"{{{{ "{f}" | parseBool }}}}"#), &[]),
            "false"
        );
    }
    assert!(render_err(r#"{{ parseBool(s="yes") }}"#, &[])
        .contains(r#"parseBool: strconv.ParseBool: parsing "yes": invalid syntax"#));
}

#[test]
fn reverse_and_length_sorts() {
    assert_eq!(
        render(
            r#"{{ reverse(list=["a", "b", "c"]) | join(sep=",") }}"#,
            &[]
        ),
        "c,b,a"
    );
    assert_eq!(
        render(
            r#"{% for kv in reverse(list=gets(pattern="/services/apache/*")) %}{{ kv.key | base }}{% endfor %}"#,
            APACHE
        ),
        "cba"
    );
    assert_eq!(
        render(r#"{{ ["a", "b"] | reverse | join(sep="") }}"#, &[]),
        "ba"
    );
    assert_eq!(
        render(
            r#"{{ sortByLength(list=["ccc", "a", "bb", "x", "dd"]) | join(sep=",") }}"#,
            &[]
        ),
        "a,x,bb,dd,ccc"
    );
    assert_eq!(
        render(r#"{{ ["ccc", "a"] | sortByLength | join(sep=",") }}"#, &[]),
        "a,ccc"
    );
    let data = &[
        ("/www/example.com", "1"),
        ("/www/a.example.com", "2"),
        ("/www/b.io", "3"),
        ("/www/c.io", "4"),
    ];
    assert_eq!(
        render(
            r#"{% for kv in sortKVByLength(list=gets(pattern="/www/*")) %}{{ kv.value }}{% endfor %}"#,
            data
        ),
        "3412"
    );
    assert_eq!(
        render(
            r#"{% for kv in gets(pattern="/www/*") | sortKVByLength %}{{ kv.value }}{% endfor %}"#,
            data
        ),
        "3412"
    );
    assert!(render_err(r#"{{ sortKVByLength(list=["a"]) }}"#, &[]).contains("{key, value}"));
    assert!(render_err(r#"{{ sortByLength(list=[1]) }}"#, &[]).contains("must be strings"));
}

#[test]
fn lookups() {
    // localhost resolves from /etc/hosts without a network.
    let all = render(r#"{{ lookupIP(name="localhost") | join(sep=",") }}"#, &[]);
    assert!(all.contains("127.0.0.1") || all.contains("::1"), "{all}");
    let v4 = render(r#"{{ lookupIPV4(name="localhost") | join(sep=",") }}"#, &[]);
    assert!(!v4.contains(':'), "{v4}");
    let v6 = render(r#"{{ lookupIPV6(name="localhost") | join(sep=",") }}"#, &[]);
    assert!(!v6.contains('.'), "{v6}");
    assert_eq!(
        render(r#"{{ lookupIP(name="127.0.0.1") | join(sep=",") }}"#, &[]),
        "127.0.0.1"
    );
    assert_eq!(
        render(
            r#"{{ lookupIP(name="no such host.invalid") | length }}"#,
            &[]
        ),
        "0"
    );
    // lookupSRV is registered (its lookups are tested against a fake server in dns.rs).
    assert_eq!(
        render(
            r#"{% if false %}{{ lookupSRV(service="http", proto="tcp", name="example.com") }}{% endif %}ok"#,
            &[]
        ),
        "ok"
    );
}

// ---- the brief's examples, as in docs/templates.md ----

#[test]
fn example_nginx_upstream() {
    let src = "upstream apache_pool {\n{% for server in getvs(pattern=\"/services/apache/*\") %}    server {{ server }};\n{% endfor %}}\n";
    let data = &[
        ("/services/apache/10.0.0.6", "10.0.0.6:8888"),
        ("/services/apache/10.0.0.7", "10.0.0.7:7777"),
    ];
    assert_eq!(
        render(src, data),
        "upstream apache_pool {\n    server 10.0.0.6:8888;\n    server 10.0.0.7:7777;\n}\n"
    );
}

/// The many-services proxy, with a resource prefix of `/svc`.
const PROXY: &str = r#"{% for name in ls(path="/subdomain") %}
upstream {{ name }} {
{%- for server in getvs(pattern="/upstream/" ~ name ~ "/*") %}
    server {{ server }};
{%- endfor %}
}
{% endfor %}
{%- for sub in gets(pattern="/subdomain/*") %}
server {
    listen 80;
    server_name {{ sub.value }};
    location / { proxy_pass http://{{ sub.key | base }}; }
}
{% endfor %}"#;

#[test]
fn example_many_services_proxy() {
    let data = &[
        ("/subdomain/app1", "www.app1.example"),
        ("/subdomain/app2", "www.app2.example"),
        ("/upstream/app1/server1", "10.0.1.1:80"),
        ("/upstream/app1/server2", "10.0.1.2:80"),
        ("/upstream/app2/server1", "10.0.2.1:80"),
    ];
    let (_d, t) = load("proxy.conf", PROXY);
    let out = t.unwrap().render(view_with_prefix("/svc", data)).unwrap();
    assert_eq!(
        out,
        "
upstream app1 {
    server 10.0.1.1:80;
    server 10.0.1.2:80;
}

upstream app2 {
    server 10.0.2.1:80;
}

server {
    listen 80;
    server_name www.app1.example;
    location / { proxy_pass http://app1; }
}

server {
    listen 80;
    server_name www.app2.example;
    location / { proxy_pass http://app2; }
}
"
    );
}

const SIDECAR: &str = r#"[mysqld]
server-id = {{ getv(key="/self/container/create_index") }}
{% if exists(key="/self/service/metadata/mysqld") -%}
{% set meta = json(s=getv(key="/self/service/metadata/mysqld")) -%}
max_connections = {{ meta.max_connections }}
{% endif -%}
bind-address = {{ getv(key="/self/container/bind", default="0.0.0.0") }}
"#;

#[test]
fn example_database_sidecar() {
    let bare = &[("/self/container/create_index", "7")];
    assert_eq!(
        render(SIDECAR, bare),
        "[mysqld]\nserver-id = 7\nbind-address = 0.0.0.0\n"
    );
    let full = &[
        ("/self/container/create_index", "7"),
        (
            "/self/service/metadata/mysqld",
            r#"{"max_connections": 500}"#,
        ),
    ];
    assert_eq!(
        render(SIDECAR, full),
        "[mysqld]\nserver-id = 7\nmax_connections = 500\nbind-address = 0.0.0.0\n"
    );
    let msg = render_err(SIDECAR, &[]);
    assert!(msg.contains(r#"key does not exist: /self/container/create_index (etcd key "/dc1/self/container/create_index")"#), "{msg}");
}

/// The store examples of docs/templates.md.
#[test]
fn doc_store_examples() {
    let data = &[
        ("/services/apache/a", "10.0.0.9:80"),
        ("/services/apache/b", "10.0.0.1:80"),
        ("/services/apache/b/weight", "5"),
    ];
    let cases = [
        (
            r#"{{ getv(key="/services/apache/z", default="none") }}"#,
            "none",
        ),
        (
            r#"{{ getvs(pattern="/services/apache/*") | join(sep=" ") }}"#,
            "10.0.0.1:80 10.0.0.9:80",
        ),
        (
            r#"{% for kv in gets(pattern="/services/apache/*") %}{{ kv.key | base }}={{ kv.value }} {% endfor %}"#,
            "a=10.0.0.9:80 b=10.0.0.1:80 ",
        ),
        (
            r#"{{ ls(path="/services/apache") | join(sep=",") }}"#,
            "a,b",
        ),
        (
            r#"{{ lsdir(path="/services/apache") | join(sep=",") }}"#,
            "b",
        ),
        (r#"{{ json(s='{"port": 80}') | get(key="port") }}"#, "80"),
        (r#"{{ map(pairs=["a", 1]) | get(key="a") }}"#, "1"),
        (r#"{{ "a:b:c" | split(sep=":") | join(sep=" ") }}"#, "a b c"),
        (
            r#"{% for i in [1, 2] %}{% set_global n = i %}{% endfor %}{{ n }}"#,
            "2",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, data), want, "{src}");
    }
}
