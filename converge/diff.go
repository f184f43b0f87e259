package converge

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Masker hides secret values in what converge prints.
type Masker struct {
	secrets []string
}

// NewMasker masks every given secret (and, for multi-line secrets such as
// PEM keys, each of their lines of 8 characters or more).
func NewMasker(secrets ...string) *Masker {
	m := &Masker{}
	seen := map[string]bool{}
	add := func(s string) {
		s = strings.TrimSpace(s)
		if len(s) >= 8 && !seen[s] {
			seen[s] = true
			m.secrets = append(m.secrets, s)
		}
	}
	for _, s := range secrets {
		add(s)
		if strings.Contains(s, "\n") {
			for _, l := range strings.Split(s, "\n") {
				if !strings.HasPrefix(strings.TrimSpace(l), "-----") {
					add(l)
				}
			}
		}
	}
	// Longest first, so a secret containing another is masked whole.
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	return m
}

// Mask replaces every known secret in s.
func (m *Masker) Mask(s string) string {
	for _, sec := range m.secrets {
		s = strings.ReplaceAll(s, sec, "********")
	}
	return s
}

// SecretFile reports files whose whole content is a secret: their diff shows
// only that they changed, even where the old content holds secrets no
// longer known here (a rotated password).
func SecretFile(p string) bool {
	base := path.Base(p)
	switch {
	case strings.HasSuffix(base, ".pass"), strings.HasSuffix(base, ".token"), strings.HasSuffix(base, ".key"),
		base == "id_ed25519", base == ".pgpass", strings.HasSuffix(base, ".env"):
		return true
	}
	return false
}

// Diff renders c as a unified diff (3 lines of context) with secrets masked.
func Diff(c Change, m *Masker) string {
	var b strings.Builder
	old := "/dev/null"
	if c.Kind != Create {
		old = "a" + c.Path
	}
	fmt.Fprintf(&b, "--- %s\n+++ b%s\n", old, c.Path)
	if c.OldOwner != c.NewOwner && c.Kind != Create {
		fmt.Fprintf(&b, "# owner %s -> %s\n", c.OldOwner, c.NewOwner)
	}
	if c.OldMode != c.NewMode && c.Kind != Create {
		fmt.Fprintf(&b, "# mode %#o -> %#o\n", c.OldMode, c.NewMode)
	}
	if c.Kind == Attrs {
		return b.String()
	}
	if SecretFile(c.Path) {
		b.WriteString("# secret file: content changed, not shown\n")
		return b.String()
	}
	b.WriteString(m.Mask(unified(splitLines(c.Old), splitLines(c.New), 3)))
	return b.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// op is one line of an edit script: ' ', '-' or '+'.
type op struct {
	kind byte
	text string
}

// unified renders the hunks of the line diff a → b (LCS; the files converge
// manages are a few hundred lines at most).
func unified(a, b []string, ctx int) string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i]})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i]})
			i++
		default:
			ops = append(ops, op{'+', b[j]})
			j++
		}
	}
	var out strings.Builder
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		// A hunk: from ctx lines before this change to ctx lines after the
		// last change that is within 2*ctx of the previous one.
		start := max(0, k-ctx)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*ctx {
				end = min(len(ops), end+ctx)
				break
			}
			end = run
		}
		aStart, bStart := 1, 1
		for _, o := range ops[:start] {
			if o.kind != '+' {
				aStart++
			}
			if o.kind != '-' {
				bStart++
			}
		}
		aLen, bLen := 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aLen++
			}
			if o.kind != '-' {
				bLen++
			}
		}
		if aLen == 0 {
			aStart--
		}
		if bLen == 0 {
			bStart--
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", aStart, aLen, bStart, bLen)
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			out.WriteString(o.text)
			if !strings.HasSuffix(o.text, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		k = end
	}
	return out.String()
}
