package run

import (
	"bytes"
	"strings"
	"testing"
)

func TestPrefixedLines(t *testing.T) {
	var out bytes.Buffer
	r := &Runner{Progress: &out}
	w := r.prefixed("shop-1")
	for _, chunk := range []string{"migrating ", "1/2\r\nmigr", "ating 2/2\n", "no newline"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := out.String(), "[shop-1] migrating 1/2\n[shop-1] migrating 2/2\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	out.Reset()
	if _, err := w.Write([]byte(strings.Repeat("x", 70<<10))); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "[shop-1] no newlinexxx") {
		t.Fatalf("a long line was not flushed: %d bytes", out.Len())
	}
	if (&Runner{}).prefixed("h") == nil {
		t.Fatal("nil writer without progress")
	}
}
