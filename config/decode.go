package config

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// FieldError is one refused configuration value: the key path (e.g.
// `belay:apps[1].replicas`) and what was wrong with it and what was expected.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// errs collects every problem so the user sees them all in one run.
type errs struct {
	list []error
	// redact hides string values in messages while a secret key is decoded.
	redact bool
}

func (e *errs) add(path, format string, args ...any) {
	e.list = append(e.list, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// covered reports whether path or one of its parents already has an error.
func (e *errs) covered(path string) bool {
	for _, err := range e.list {
		if fe, ok := err.(*FieldError); ok && isWithin(path, fe.Path) {
			return true
		}
	}
	return false
}

// under reports whether path or anything below it already has an error.
func (e *errs) under(path string) bool {
	for _, err := range e.list {
		if fe, ok := err.(*FieldError); ok && isWithin(fe.Path, path) {
			return true
		}
	}
	return false
}

// isWithin reports whether path is parent itself or a field/element below it.
func isWithin(path, parent string) bool {
	if !strings.HasPrefix(path, parent) {
		return false
	}
	rest := path[len(parent):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// sorted returns the errors grouped by top-level key in Keys order (unknown keys
// last), keeping the order they were found in within a key.
func (e *errs) sorted() []error {
	out := slices.Clone(e.list)
	slices.SortStableFunc(out, func(a, b error) int { return keyRank(a) - keyRank(b) })
	return out
}

func keyRank(err error) int {
	msg := err.Error()
	if fe, ok := err.(*FieldError); ok {
		msg = fe.Path
	}
	for i, k := range Keys {
		if isWithin(msg, k) || strings.HasPrefix(msg, k+":") {
			return i
		}
	}
	return len(Keys)
}

func (e *errs) describe(v any) string {
	if _, ok := v.(string); ok && e.redact {
		return "a string"
	}
	return describe(v)
}

// obj walks one JSON object, remembering which fields were read so the rest
// can be reported as unknown (a typo must not silently fall back to a default).
type obj struct {
	e    *errs
	path string
	m    map[string]any
	seen map[string]bool
}

// asObject returns v as an object, or records an error and returns nil.
func asObject(e *errs, path string, v any) *obj {
	m, ok := v.(map[string]any)
	if !ok {
		e.add(path, "got %s, expected an object", e.describe(v))
		return nil
	}
	return &obj{e: e, path: path, m: m, seen: map[string]bool{}}
}

func (o *obj) field(name string) string { return o.path + "." + name }

// get returns the raw field; a JSON null counts as absent.
func (o *obj) get(name string) (any, bool) {
	o.seen[name] = true
	v, ok := o.m[name]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

// str reads a string field; it reports whether the field was present and well typed.
func (o *obj) str(name string, dst *string) bool {
	v, ok := o.get(name)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		o.e.add(o.field(name), "got %s, expected a string", o.e.describe(v))
		return false
	}
	*dst = s
	return true
}

// integer reads an integer field. Numeric strings are accepted because
// `pulumi config set --path` stores what the user typed as a string.
func (o *obj) integer(name string, dst *int) bool {
	v, ok := o.get(name)
	if !ok {
		return false
	}
	n, ok := toInt(v)
	if !ok {
		o.e.add(o.field(name), "got %s, expected an integer", o.e.describe(v))
		return false
	}
	*dst = n
	return true
}

// boolean reads a boolean field ("true"/"false" strings accepted, see integer).
func (o *obj) boolean(name string, dst *bool) bool {
	v, ok := o.get(name)
	if !ok {
		return false
	}
	switch b := v.(type) {
	case bool:
		*dst = b
		return true
	case string:
		// Only the spellings Pulumi writes; "1" or "yes" are more likely mistakes.
		if b == "true" || b == "false" {
			*dst = b == "true"
			return true
		}
	}
	o.e.add(o.field(name), "got %s, expected true or false", o.e.describe(v))
	return false
}

// strs reads a list of strings.
func (o *obj) strs(name string, dst *[]string) bool {
	v, ok := o.get(name)
	if !ok {
		return false
	}
	out, ok := toStrings(o.e, o.field(name), v)
	if ok {
		*dst = out
	}
	return ok
}

// done reports every field that was never read, in sorted order.
func (o *obj) done(expected ...string) {
	var unknown []string
	for k := range o.m {
		if !o.seen[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		o.e.add(o.field(k), "unknown field, expected one of %s", strings.Join(expected, ", "))
	}
}

func toStrings(e *errs, path string, v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		e.add(path, "got %s, expected a list of strings", e.describe(v))
		return nil, false
	}
	out := make([]string, 0, len(list))
	good := true
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			e.add(fmt.Sprintf("%s[%d]", path, i), "got %s, expected a string", e.describe(item))
			good = false
			continue
		}
		out = append(out, s)
	}
	return out, good
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
			return 0, false
		}
		return int(i), true
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
			return 0, false
		}
		return i, true
	}
	return 0, false
}

// describe names a decoded JSON value for an error message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("string %q", x)
	case json.Number:
		return "number " + string(x)
	case bool:
		return fmt.Sprintf("boolean %t", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// decodeJSON parses one config value as Pulumi passes it (JSON text), keeping
// numbers exact so 2.5 is refused as an integer rather than truncated.
func decodeJSON(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the value")
	}
	return v, nil
}
