package target

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// FileName is the project file belay looks for.
const FileName = "belay.yaml"

// File is a parsed belay.yaml.
type File struct {
	// Path is where it was read from (absolute when found by Find).
	Path string
	// Target is "lab", "pulumi:<stack>" or an inventory file relative to the
	// file's directory; "" when the file only holds defaults.
	Target string
	// Defaults are per-command flag defaults, in file order.
	Defaults []Default
}

// Default is one `defaults: {<command>: {<flag>: <value>}}` entry.
type Default struct {
	// Command is the command path without "belay", e.g. "deploy" or "backup status".
	Command string
	Flag    string
	// Value is what the flag is set to, as on the command line (a list is
	// joined with commas, as slice flags accept).
	Value string
	Line  int
}

// Key names the entry in errors: "defaults.deploy.steps".
func (d Default) Key() string { return "defaults." + d.Command + "." + d.Flag }

// Find looks for belay.yaml in dir and its parents and parses the nearest one.
// It returns nil, nil when there is none.
func Find(dir string) (*File, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("looking for %s: %w", FileName, err)
	}
	for {
		p := filepath.Join(dir, FileName)
		st, err := os.Stat(p)
		switch {
		case err == nil && st.Mode().IsRegular():
			return Load(p)
		case err == nil:
			return nil, fmt.Errorf("%s: not a regular file", p)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("looking for %s: %w", FileName, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, nil
		}
		dir = parent
	}
}

// Load reads and parses one belay.yaml.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseFile(path, b)
}

// raw is the file's schema; unknown top-level keys are errors (an empty
// file is io.EOF to the decoder and parses as no target, no defaults).
type raw struct {
	Target   string    `yaml:"target"`
	Defaults yaml.Node `yaml:"defaults"`
}

// ParseFile parses belay.yaml's content; path names the file in errors.
func ParseFile(path string, b []byte) (*File, error) {
	var r raw
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w (expected keys: target, defaults)", path, err)
	}
	f := &File{Path: path, Target: r.Target}
	if f.Target != "" {
		if _, err := Parse(f.Target, path, filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("%s: target: %w", path, err)
		}
	}
	d := &r.Defaults
	if d.Kind == 0 || d.Tag == "!!null" {
		return f, nil
	}
	if d.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: defaults: expected a map of command to {flag: value}", path, d.Line)
	}
	for i := 0; i+1 < len(d.Content); i += 2 {
		cmdKey, flags := d.Content[i], d.Content[i+1]
		command := strings.Join(strings.Fields(cmdKey.Value), " ")
		if command == "" {
			return nil, fmt.Errorf("%s:%d: defaults: empty command name", path, cmdKey.Line)
		}
		if flags.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: defaults.%s: expected a map of flag name to value", path, flags.Line, command)
		}
		for j := 0; j+1 < len(flags.Content); j += 2 {
			k, v := flags.Content[j], flags.Content[j+1]
			def := Default{Command: command, Flag: strings.TrimPrefix(k.Value, "--"), Line: k.Line}
			val, err := scalar(v)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", path, v.Line, def.Key(), err)
			}
			def.Value = val
			f.Defaults = append(f.Defaults, def)
		}
	}
	return f, nil
}

// scalar turns a YAML value into the flag's command-line form.
func scalar(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		var parts []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("expected a list of plain values")
			}
			if strings.Contains(c.Value, ",") {
				return "", fmt.Errorf("list item %q contains a comma; write the list as one string instead", c.Value)
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("expected a value (string, number, bool) or a list of values")
}
