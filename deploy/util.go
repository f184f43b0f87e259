package deploy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/belay-sh/belay/hostrelease"
)

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinHostErrors(errs map[string]error) error {
	var out []error
	for _, h := range sortedKeys(errs) {
		if errs[h] != nil {
			out = append(out, errs[h])
		}
	}
	return errors.Join(out...)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func trim(s string) string {
	if len(s) > 1000 {
		return s[:1000] + "…"
	}
	return s
}

// OpenArtifact returns the Runner.Artifact opener for a verified artifact,
// refusing a file that changed since it was inspected.
func OpenArtifact(a *hostrelease.Artifact) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(a.Path)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if st.Size() != a.Size {
			f.Close()
			return nil, fmt.Errorf("artifact %s changed since it was verified (size %d, was %d)", a.Path, st.Size(), a.Size)
		}
		// The host recomputes sha256 on arrival and refuses a mismatch.
		return f, nil
	}
}
