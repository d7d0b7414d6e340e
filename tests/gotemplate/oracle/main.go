// Command oracle renders templates the way confd 0.17 renders a template resource: Go
// 1.19's text/template with confd's function map over a store of the resource's keys.
// It is the judge of tests/gotemplate/: every expected output there comes from it.
//
//	oracle CASEDIR   renders one corpus case: CASEDIR/template.tmpl over CASEDIR/data.json
//	                 (full etcd key -> string value) and the optional CASEDIR/prefix. The
//	                 output goes to stdout (exit 0); Go's parse or execution error goes to
//	                 stdout as one line (exit 3); any other problem exits 1.
//	oracle -batch    reads one JSON request a line from stdin,
//	                 {"name": "t.tmpl", "template": "...", "data": {...}, "prefix": "..."},
//	                 and answers each with one line {"ok": true|false, "out": BASE64}, where
//	                 out is the output or Go's error text (tests/gotemplate_diff.rs uses it).
//
// The oracle is written for this project (no confd or memkv source is copied): memkv/
// models confd's key/value store, funcs.go its function map, both from confd's documented
// behaviour and what the corpus shows of it.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"

	"oracle/memkv"
)

// visibleKeys is what a resource with this prefix and keys = ["/"] sees: confd fetches the
// prefix itself and everything under "prefix/", then shows each key with the prefix cut off
// and a leading "/" (path.Join("/", strings.TrimPrefix(key, prefix))). A prefix is given a
// leading "/" when it has none.
func visibleKeys(data map[string]string, prefix string) map[string]string {
	if !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	root := path.Join(prefix, "/")
	seen := map[string]string{}
	for k, v := range data {
		if root == "/" || k == root || strings.HasPrefix(k, root+"/") {
			seen[path.Join("/", strings.TrimPrefix(k, prefix))] = v
		}
	}
	return seen
}

// render parses and executes text as confd does (the template is named after its file,
// executed with nil data). ok is false when Go reported an error, whose text is returned.
func render(name, text string, data map[string]string, prefix string) (out []byte, ok bool) {
	funcs := confdFuncs()
	for fname, fn := range memkv.New(visibleKeys(data, prefix)).Funcs() {
		funcs[fname] = fn
	}
	tmpl, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		return []byte(err.Error()), false
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, nil); err != nil {
		return []byte(err.Error()), false
	}
	return buf.Bytes(), true
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "oracle: "+format+"\n", a...)
	os.Exit(1)
}

func runCase(dir string) {
	raw, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		die("%v", err)
	}
	var data map[string]string
	if err := json.Unmarshal(raw, &data); err != nil {
		die("%s/data.json: %v", dir, err)
	}
	prefix := ""
	if p, err := os.ReadFile(filepath.Join(dir, "prefix")); err == nil {
		prefix = strings.TrimSpace(string(p))
	}
	src := filepath.Join(dir, "template.tmpl")
	text, err := os.ReadFile(src)
	if err != nil {
		die("%v", err)
	}
	out, ok := render(filepath.Base(src), string(text), data, prefix)
	if !ok {
		// One line: a multi-line error has its newlines written as \n.
		fmt.Print(strings.ReplaceAll(string(out), "\n", "\\n") + "\n")
		os.Exit(3)
	}
	os.Stdout.Write(out)
}

type request struct {
	Name     string            `json:"name"`
	Template string            `json:"template"`
	Data     map[string]string `json:"data"`
	Prefix   string            `json:"prefix"`
}

type answer struct {
	Ok  bool   `json:"ok"`
	Out []byte `json:"out"` // base64 in JSON: outputs need not be UTF-8
}

func runBatch() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			die("batch request: %v", err)
		}
		if req.Name == "" {
			req.Name = "template.tmpl"
		}
		out, ok := render(req.Name, req.Template, req.Data, req.Prefix)
		if err := enc.Encode(answer{Ok: ok, Out: out}); err != nil {
			die("batch answer: %v", err)
		}
	}
	if err := in.Err(); err != nil {
		die("batch input: %v", err)
	}
	if err := w.Flush(); err != nil {
		die("batch output: %v", err)
	}
}

func main() {
	switch {
	case len(os.Args) == 2 && os.Args[1] == "-batch":
		runBatch()
	case len(os.Args) == 2:
		runCase(os.Args[1])
	default:
		die("usage: oracle CASEDIR | oracle -batch")
	}
}
