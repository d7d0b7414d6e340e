// Package memkv is the oracle's model of the key/value store confd hands its templates
// (confd vendors a package of this name; its type names show up in Go's output, e.g. `%T`
// prints memkv.KVPair, so this package carries the same package and type names). Written
// for this project from confd's documented template functions (docs/templates.md of confd:
// exists, get, gets, getv, getvs, ls, lsdir) and the observable behaviour the corpus pins.
package memkv

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// KVPair is one key and its value; templates read .Key and .Value.
type KVPair struct {
	Key   string
	Value string
}

// KVPairs is what gets returns: a named slice type, which confd's reverse does not
// recognise (it only knows []string and []KVPair).
type KVPairs []KVPair

// Store holds the keys a template sees, already stripped of the resource prefix.
type Store struct {
	values map[string]string
}

// New returns a store over a copy of values.
func New(values map[string]string) *Store {
	s := &Store{values: make(map[string]string, len(values))}
	for k, v := range values {
		s.values[k] = v
	}
	return s
}

// Funcs are the store's template functions, by the names confd registers them under.
func (s *Store) Funcs() map[string]interface{} {
	return map[string]interface{}{
		"exists": s.exists,
		"get":    s.get,
		"gets":   s.getAll,
		"getv":   s.getValue,
		"getvs":  s.getAllValues,
		"ls":     s.list,
		"lsdir":  s.listDirs,
	}
}

// sortedKeys gives every key in byte order, so that results never depend on map order.
func (s *Store) sortedKeys() []string {
	keys := make([]string, 0, len(s.values))
	for k := range s.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *Store) exists(key string) bool {
	_, found := s.values[key]
	return found
}

// get fails on a missing key with "key does not exist: KEY".
func (s *Store) get(key string) (KVPair, error) {
	v, found := s.values[key]
	if !found {
		return KVPair{}, fmt.Errorf("key does not exist: %s", key)
	}
	return KVPair{Key: key, Value: v}, nil
}

// getValue takes an optional default, used (even when empty) only for a missing key.
func (s *Store) getValue(key string, fallback ...string) (string, error) {
	pair, err := s.get(key)
	if err == nil {
		return pair.Value, nil
	}
	if len(fallback) == 0 {
		return "", err
	}
	return fallback[0], nil
}

// getAll matches every key against a path.Match pattern; the result is sorted by key
// and never nil. A malformed pattern is an error once there is any key to test.
func (s *Store) getAll(pattern string) (KVPairs, error) {
	found := KVPairs{}
	for _, k := range s.sortedKeys() {
		ok, err := path.Match(pattern, k)
		if err != nil {
			return nil, err
		}
		if ok {
			found = append(found, KVPair{Key: k, Value: s.values[k]})
		}
	}
	return found, nil
}

// getAllValues is getAll's values, sorted as strings (not by key).
func (s *Store) getAllValues(pattern string) ([]string, error) {
	pairs, err := s.getAll(pattern)
	values := []string{}
	if err != nil {
		return values, err
	}
	for _, p := range pairs {
		values = append(values, p.Value)
	}
	sort.Strings(values)
	return values, nil
}

// segments splits a cleaned path on "/": "/a/b" is ["", "a", "b"] and "/" is ["", ""].
func segments(p string) []string {
	return strings.Split(path.Clean(p), "/")
}

// startsWith tells whether whole begins with the segments of head.
func startsWith(whole, head []string) bool {
	if len(head) > len(whole) {
		return false
	}
	for i, h := range head {
		if whole[i] != h {
			return false
		}
	}
	return true
}

func sortedSet(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// list names the entries below dir: the first segment of every key whose parent lies at
// or under dir (with dir's raw text, not its cleaned form, cut off the key), and the base
// name of a key equal to dir. Because "/" splits into two empty segments, ls "/" only sees
// keys directly under the root.
func (s *Store) list(dir string) []string {
	names := map[string]struct{}{}
	want := segments(dir)
	for k := range s.values {
		if k == dir {
			names[path.Base(k)] = struct{}{}
			continue
		}
		if !startsWith(segments(path.Dir(k)), want) {
			continue
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(k, dir), "/")
		names[strings.SplitN(rest, "/", 2)[0]] = struct{}{}
	}
	return sortedSet(names)
}

// listDirs names the sub-directories of dir: for every key whose text starts with dir's
// text and whose parent lies strictly below dir, the parent's segment just after dir's.
func (s *Store) listDirs(dir string) []string {
	names := map[string]struct{}{}
	want := segments(dir)
	for k := range s.values {
		if !strings.HasPrefix(k, dir) {
			continue
		}
		parent := segments(path.Dir(k))
		if len(parent) > len(want) && startsWith(parent, want) {
			names[parent[len(want)]] = struct{}{}
		}
	}
	return sortedSet(names)
}
