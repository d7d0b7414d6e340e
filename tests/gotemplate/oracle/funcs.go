package main

// confd's template functions (confd 0.17, docs/templates.md of confd), written for this
// project from their documented behaviour. What matters to the corpus is each function's
// Go signature (text/template reports wrong argument types and counts from it, and `%T`
// prints result types) and its result; both are kept as confd has them.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"oracle/memkv"
)

// confdFuncs is the function map confd gives every template, store functions excluded.
func confdFuncs() map[string]interface{} {
	return map[string]interface{}{
		// Thin wrappers over the standard library, as confd registers them.
		"base":       path.Base,
		"dir":        path.Dir,
		"split":      strings.Split,
		"join":       strings.Join,
		"toUpper":    strings.ToUpper,
		"toLower":    strings.ToLower,
		"contains":   strings.Contains,
		"replace":    strings.Replace,
		"trimSuffix": strings.TrimSuffix,
		"datetime":   time.Now,
		"parseBool":  strconv.ParseBool,
		"atoi":       strconv.Atoi,
		// confd's own helpers.
		"json":           decodeObject,
		"jsonArray":      decodeArray,
		"map":            makeMap,
		"getenv":         envOr,
		"lookupIP":       resolveAll,
		"lookupIPV4":     resolveV4,
		"lookupIPV6":     resolveV6,
		"lookupSRV":      resolveSRV,
		"fileExists":     pathExists,
		"base64Encode":   encode64,
		"base64Decode":   decode64,
		"reverse":        reverseInPlace,
		"sortByLength":   sortStringsByLength,
		"sortKVByLength": sortPairsByKeyLength,
		"seq":            intRange,
		// Integer arithmetic with Go's int semantics (truncating division, a zero divisor
		// panics, which text/template reports as an error calling the function).
		"add": func(a, b int) int { return a + b },
		"sub": func(a, b int) int { return a - b },
		"mul": func(a, b int) int { return a * b },
		"div": func(a, b int) int { return a / b },
		"mod": func(a, b int) int { return a % b },
	}
}

// intRange lists first..last inclusive; empty (nil) when last < first.
func intRange(first, last int) []int {
	var out []int
	for n := first; n <= last; n++ {
		out = append(out, n)
	}
	return out
}

// sortStringsByLength orders by length with sort.Sort (not stable), in the caller's slice:
// a template that kept the list in a variable sees it reordered, as under confd.
func sortStringsByLength(list []string) []string {
	sort.Sort(lengthOrder(list))
	return list
}

type lengthOrder []string

func (l lengthOrder) Len() int           { return len(l) }
func (l lengthOrder) Less(a, b int) bool { return len(l[a]) < len(l[b]) }
func (l lengthOrder) Swap(a, b int)      { l[a], l[b] = l[b], l[a] }

// sortPairsByKeyLength is sortStringsByLength on the pairs' keys. Its parameter type is
// []memkv.KVPair, to which the memkv.KVPairs that gets returns is assignable.
func sortPairsByKeyLength(pairs []memkv.KVPair) []memkv.KVPair {
	sort.Sort(keyLengthOrder(pairs))
	return pairs
}

type keyLengthOrder []memkv.KVPair

func (l keyLengthOrder) Len() int           { return len(l) }
func (l keyLengthOrder) Less(a, b int) bool { return len(l[a].Key) < len(l[b].Key) }
func (l keyLengthOrder) Swap(a, b int)      { l[a], l[b] = l[b], l[a] }

// reverseInPlace reverses a []string or a []memkv.KVPair where it lies and returns it;
// anything else (memkv.KVPairs included: a distinct named type) comes back untouched.
func reverseInPlace(list interface{}) interface{} {
	var swap func(a, b int)
	n := 0
	switch l := list.(type) {
	case []string:
		n, swap = len(l), func(a, b int) { l[a], l[b] = l[b], l[a] }
	case []memkv.KVPair:
		n, swap = len(l), func(a, b int) { l[a], l[b] = l[b], l[a] }
	default:
		return list
	}
	for a, b := 0, n-1; a < b; a, b = a+1, b-1 {
		swap(a, b)
	}
	return list
}

// envOr is the variable's value, or the optional default when it is unset or empty.
func envOr(name string, fallback ...string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	if len(fallback) == 0 {
		return ""
	}
	return fallback[0]
}

// makeMap pairs its arguments up as key, value, ...
func makeMap(kv ...interface{}) (map[string]interface{}, error) {
	if len(kv)%2 == 1 {
		return nil, errors.New("invalid map call")
	}
	out := map[string]interface{}{}
	for i := 0; i+1 < len(kv); i += 2 {
		name, isString := kv[i].(string)
		if !isString {
			return nil, errors.New("map keys must be strings")
		}
		out[name] = kv[i+1]
	}
	return out, nil
}

// decodeObject and decodeArray are encoding/json into generic values: numbers as float64.
func decodeObject(text string) (map[string]interface{}, error) {
	var v map[string]interface{}
	return v, json.Unmarshal([]byte(text), &v)
}

func decodeArray(text string) ([]interface{}, error) {
	var v []interface{}
	return v, json.Unmarshal([]byte(text), &v)
}

// resolveAll is every address of host as text, sorted; nil when the lookup fails.
func resolveAll(host string) []string {
	addrs, err := net.LookupIP(host)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

// resolveV4 and resolveV6 keep the addresses whose text has a "." or a ":".
func resolveV4(host string) []string { return keepContaining(resolveAll(host), ".") }
func resolveV6(host string) []string { return keepContaining(resolveAll(host), ":") }

func keepContaining(list []string, mark string) []string {
	var out []string
	for _, s := range list {
		if strings.Contains(s, mark) {
			out = append(out, s)
		}
	}
	return out
}

// resolveSRV is the SRV records of _service._proto.name, ordered by the text of target,
// port, priority and weight run together; empty (not nil) when the lookup fails.
func resolveSRV(service, proto, name string) []*net.SRV {
	_, records, err := net.LookupSRV(service, proto, name)
	if err != nil {
		return []*net.SRV{}
	}
	key := func(r *net.SRV) string {
		return fmt.Sprintf("%s%d%d%d", r.Target, r.Port, r.Priority, r.Weight)
	}
	sort.Slice(records, func(a, b int) bool { return key(records[a]) < key(records[b]) })
	return records
}

// pathExists is false only when stat says the path does not exist.
func pathExists(p string) bool {
	_, err := os.Stat(p)
	return !os.IsNotExist(err)
}

func encode64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func decode64(s string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	return string(raw), err
}
