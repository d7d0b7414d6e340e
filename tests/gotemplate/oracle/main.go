// Command oracle renders one corpus case the way confd 0.17 renders a template resource.
//
// Usage: oracle CASEDIR
//
// It reads CASEDIR/template.tmpl, CASEDIR/data.json (full etcd key -> string value) and the
// optional CASEDIR/prefix, and writes the rendered bytes to stdout (exit 0). When Go's parse or
// execution fails it writes Go's error text, one line, to stdout and exits 3. Any other problem
// (unreadable case) exits 1.
//
// Semantics copied (stdlib only) from confd's own code, kelseyhightower/confd at 919444eb
// (v0.16.0-7, reports 0.17.0-dev), https://github.com/kelseyhightower/confd :
//   - resource/template/template_funcs.go  newFuncMap() and its helpers (Seq, SortKVByLength,
//     SortByLength, Reverse, Getenv, CreateMap, UnmarshalJsonObject/Array, LookupIP/IPV4/IPV6,
//     LookupSRV, Base64Encode/Decode), as stored for that file (lookupIPV4/V6, trimSuffix,
//     parseBool, add/sub/div/mod/mul, seq, atoi present);
//   - resource/template/resource.go  NewTemplateResource (prefix gets a leading "/";
//     funcMap = newFuncMap() + addFuncs(store.FuncMap)), setVars (store key =
//     path.Join("/", strings.TrimPrefix(k, prefix))), createStageFile
//     (template.New(filepath.Base(src)).Funcs(funcMap).ParseFiles(src); Execute(w, nil));
//   - util/util.go  IsFileExist (os.Stat + os.IsNotExist);
//   - vendored github.com/kelseyhightower/memkv v0.1.1 store.go + kvpair.go
//     (https://github.com/kelseyhightower/memkv): Exists, Get (KeyError "key does not exist: K"),
//     GetValue (default taken when one is given, even ""), GetAll (path.Match, sorted by key),
//     GetAllValues (values sorted as strings), List, ListDir.
//
// The etcd fetch is modelled as confd's etcdv3 GetValues for keys = ["/"] under the prefix:
// keys equal to the prefix or below it ("prefix/...") are kept.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
)

// ---- memkv (kvpair.go) ----

type KVPair struct {
	Key   string
	Value string
}

type KVPairs []KVPair

func (ks KVPairs) Len() int           { return len(ks) }
func (ks KVPairs) Less(i, j int) bool { return ks[i].Key < ks[j].Key }
func (ks KVPairs) Swap(i, j int)      { ks[i], ks[j] = ks[j], ks[i] }

// ---- memkv (store.go) ----

var ErrNotExist = errors.New("key does not exist")

type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Err.Error() + ": " + e.Key }

type Store struct {
	FuncMap map[string]interface{}
	sync.RWMutex
	m map[string]KVPair
}

func NewStore() *Store {
	s := &Store{m: make(map[string]KVPair)}
	s.FuncMap = map[string]interface{}{
		"exists": s.Exists,
		"ls":     s.List,
		"lsdir":  s.ListDir,
		"get":    s.Get,
		"gets":   s.GetAll,
		"getv":   s.GetValue,
		"getvs":  s.GetAllValues,
	}
	return s
}

func (s *Store) Exists(key string) bool {
	_, err := s.Get(key)
	return err == nil
}

func (s *Store) Get(key string) (KVPair, error) {
	s.RLock()
	kv, ok := s.m[key]
	s.RUnlock()
	if !ok {
		return kv, &KeyError{key, ErrNotExist}
	}
	return kv, nil
}

func (s *Store) GetValue(key string, v ...string) (string, error) {
	kv, err := s.Get(key)
	if err != nil {
		if len(v) > 0 {
			return v[0], nil
		}
		return "", err
	}
	return kv.Value, nil
}

func (s *Store) GetAll(pattern string) (KVPairs, error) {
	ks := make(KVPairs, 0)
	s.RLock()
	defer s.RUnlock()
	for _, kv := range s.m {
		m, err := path.Match(pattern, kv.Key)
		if err != nil {
			return nil, err
		}
		if m {
			ks = append(ks, kv)
		}
	}
	if len(ks) == 0 {
		return ks, nil
	}
	sort.Sort(ks)
	return ks, nil
}

func (s *Store) GetAllValues(pattern string) ([]string, error) {
	vs := make([]string, 0)
	ks, err := s.GetAll(pattern)
	if err != nil {
		return vs, err
	}
	if len(ks) == 0 {
		return vs, nil
	}
	for _, kv := range ks {
		vs = append(vs, kv.Value)
	}
	sort.Strings(vs)
	return vs, nil
}

func (s *Store) List(filePath string) []string {
	vs := make([]string, 0)
	m := make(map[string]bool)
	s.RLock()
	defer s.RUnlock()
	prefix := pathToTerms(filePath)
	for _, kv := range s.m {
		if kv.Key == filePath {
			m[path.Base(kv.Key)] = true
			continue
		}
		target := pathToTerms(path.Dir(kv.Key))
		if samePrefixTerms(prefix, target) {
			m[strings.Split(stripKey(kv.Key, filePath), "/")[0]] = true
		}
	}
	for k := range m {
		vs = append(vs, k)
	}
	sort.Strings(vs)
	return vs
}

func (s *Store) ListDir(filePath string) []string {
	vs := make([]string, 0)
	m := make(map[string]bool)
	s.RLock()
	defer s.RUnlock()
	prefix := pathToTerms(filePath)
	for _, kv := range s.m {
		if strings.HasPrefix(kv.Key, filePath) {
			items := pathToTerms(path.Dir(kv.Key))
			if samePrefixTerms(prefix, items) && (len(items)-len(prefix) >= 1) {
				m[items[len(prefix):][0]] = true
			}
		}
	}
	for k := range m {
		vs = append(vs, k)
	}
	sort.Strings(vs)
	return vs
}

func (s *Store) Set(key string, value string) {
	s.Lock()
	s.m[key] = KVPair{key, value}
	s.Unlock()
}

func stripKey(key, prefix string) string {
	return strings.TrimPrefix(strings.TrimPrefix(key, prefix), "/")
}

func pathToTerms(filePath string) []string {
	return strings.Split(path.Clean(filePath), "/")
}

func samePrefixTerms(prefix, test []string) bool {
	if len(test) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if prefix[i] != test[i] {
			return false
		}
	}
	return true
}

// ---- confd resource/template/template_funcs.go ----

func newFuncMap() map[string]interface{} {
	m := make(map[string]interface{})
	m["base"] = path.Base
	m["split"] = strings.Split
	m["json"] = UnmarshalJsonObject
	m["jsonArray"] = UnmarshalJsonArray
	m["dir"] = path.Dir
	m["map"] = CreateMap
	m["getenv"] = Getenv
	m["join"] = strings.Join
	m["datetime"] = time.Now
	m["toUpper"] = strings.ToUpper
	m["toLower"] = strings.ToLower
	m["contains"] = strings.Contains
	m["replace"] = strings.Replace
	m["trimSuffix"] = strings.TrimSuffix
	m["lookupIP"] = LookupIP
	m["lookupIPV4"] = LookupIPV4
	m["lookupIPV6"] = LookupIPV6
	m["lookupSRV"] = LookupSRV
	m["fileExists"] = IsFileExist
	m["base64Encode"] = Base64Encode
	m["base64Decode"] = Base64Decode
	m["parseBool"] = strconv.ParseBool
	m["reverse"] = Reverse
	m["sortByLength"] = SortByLength
	m["sortKVByLength"] = SortKVByLength
	m["add"] = func(a, b int) int { return a + b }
	m["sub"] = func(a, b int) int { return a - b }
	m["div"] = func(a, b int) int { return a / b }
	m["mod"] = func(a, b int) int { return a % b }
	m["mul"] = func(a, b int) int { return a * b }
	m["seq"] = Seq
	m["atoi"] = strconv.Atoi
	return m
}

func addFuncs(out, in map[string]interface{}) {
	for name, fn := range in {
		out[name] = fn
	}
}

func Seq(first, last int) []int {
	var arr []int
	for i := first; i <= last; i++ {
		arr = append(arr, i)
	}
	return arr
}

type byLengthKV []KVPair

func (s byLengthKV) Len() int           { return len(s) }
func (s byLengthKV) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s byLengthKV) Less(i, j int) bool { return len(s[i].Key) < len(s[j].Key) }

// SortKVByLength takes []memkv.KVPair in confd; KVPairs (what gets returns) is assignable to it.
func SortKVByLength(values []KVPair) []KVPair {
	sort.Sort(byLengthKV(values))
	return values
}

type byLength []string

func (s byLength) Len() int           { return len(s) }
func (s byLength) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s byLength) Less(i, j int) bool { return len(s[i]) < len(s[j]) }

func SortByLength(values []string) []string {
	sort.Sort(byLength(values))
	return values
}

// Reverse reverses []string or []KVPair in place (a KVPairs value, what gets returns, is
// neither, so it comes back unchanged, as in confd).
func Reverse(values interface{}) interface{} {
	switch values.(type) {
	case []string:
		v := values.([]string)
		for left, right := 0, len(v)-1; left < right; left, right = left+1, right-1 {
			v[left], v[right] = v[right], v[left]
		}
	case []KVPair:
		v := values.([]KVPair)
		for left, right := 0, len(v)-1; left < right; left, right = left+1, right-1 {
			v[left], v[right] = v[right], v[left]
		}
	}
	return values
}

func Getenv(key string, v ...string) string {
	defaultValue := ""
	if len(v) > 0 {
		defaultValue = v[0]
	}
	value := os.Getenv(key)
	if value == "" {
		return defaultValue
	}
	return value
}

func CreateMap(values ...interface{}) (map[string]interface{}, error) {
	if len(values)%2 != 0 {
		return nil, errors.New("invalid map call")
	}
	dict := make(map[string]interface{}, len(values)/2)
	for i := 0; i < len(values); i += 2 {
		key, ok := values[i].(string)
		if !ok {
			return nil, errors.New("map keys must be strings")
		}
		dict[key] = values[i+1]
	}
	return dict, nil
}

func UnmarshalJsonObject(data string) (map[string]interface{}, error) {
	var ret map[string]interface{}
	err := json.Unmarshal([]byte(data), &ret)
	return ret, err
}

func UnmarshalJsonArray(data string) ([]interface{}, error) {
	var ret []interface{}
	err := json.Unmarshal([]byte(data), &ret)
	return ret, err
}

func LookupIP(data string) []string {
	ips, err := net.LookupIP(data)
	if err != nil {
		return nil
	}
	ipStrings := make([]string, len(ips))
	for i, ip := range ips {
		ipStrings[i] = ip.String()
	}
	sort.Strings(ipStrings)
	return ipStrings
}

func LookupIPV6(data string) []string {
	var addresses []string
	for _, ip := range LookupIP(data) {
		if strings.Contains(ip, ":") {
			addresses = append(addresses, ip)
		}
	}
	return addresses
}

func LookupIPV4(data string) []string {
	var addresses []string
	for _, ip := range LookupIP(data) {
		if strings.Contains(ip, ".") {
			addresses = append(addresses, ip)
		}
	}
	return addresses
}

type sortSRV []*net.SRV

func (s sortSRV) Len() int      { return len(s) }
func (s sortSRV) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s sortSRV) Less(i, j int) bool {
	str1 := fmt.Sprintf("%s%d%d%d", s[i].Target, s[i].Port, s[i].Priority, s[i].Weight)
	str2 := fmt.Sprintf("%s%d%d%d", s[j].Target, s[j].Port, s[j].Priority, s[j].Weight)
	return str1 < str2
}

func LookupSRV(service, proto, name string) []*net.SRV {
	_, addrs, err := net.LookupSRV(service, proto, name)
	if err != nil {
		return []*net.SRV{}
	}
	sort.Sort(sortSRV(addrs))
	return addrs
}

func Base64Encode(data string) string {
	return base64.StdEncoding.EncodeToString([]byte(data))
}

func Base64Decode(data string) (string, error) {
	s, err := base64.StdEncoding.DecodeString(data)
	return string(s), err
}

// ---- confd util/util.go ----

func IsFileExist(fpath string) bool {
	if _, err := os.Stat(fpath); os.IsNotExist(err) {
		return false
	}
	return true
}

// ---- driver ----

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "oracle: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: oracle CASEDIR")
	}
	dir := os.Args[1]
	raw, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		fail("%v", err)
	}
	var data map[string]string
	if err := json.Unmarshal(raw, &data); err != nil {
		fail("%s/data.json: %v", dir, err)
	}
	prefix := ""
	if p, err := os.ReadFile(filepath.Join(dir, "prefix")); err == nil {
		prefix = strings.TrimSpace(string(p))
	}
	// NewTemplateResource: a leading "/" is added when missing.
	if !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	// setVars: GetValues(appendPrefix(prefix, ["/"])), then strip the prefix.
	fetched := path.Join(prefix, "/")
	store := NewStore()
	for k, v := range data {
		if fetched != "/" && k != fetched && !strings.HasPrefix(k, fetched+"/") {
			continue
		}
		store.Set(path.Join("/", strings.TrimPrefix(k, prefix)), v)
	}
	funcMap := newFuncMap()
	addFuncs(funcMap, store.FuncMap)

	src := filepath.Join(dir, "template.tmpl")
	tmpl, err := template.New(filepath.Base(src)).Funcs(funcMap).ParseFiles(src)
	if err != nil {
		fmt.Print(oneLine(err))
		os.Exit(3)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, nil); err != nil {
		fmt.Print(oneLine(err))
		os.Exit(3)
	}
	os.Stdout.Write(out.Bytes())
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "\\n") + "\n"
}
