package release_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/release"
	"github.com/belay-sh/belay/hostrelease"
)

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bomb streams a gzip'd tar to disk: start, then files of the given sizes
// (zeros), then n empty files; it never holds the archive in memory.
func bomb(t *testing.T, sizes []int64, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bomb.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	write := func(h *tar.Header, body io.Reader) {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if body != nil {
			if _, err := io.CopyN(tw, body, h.Size); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(&tar.Header{Typeflag: tar.TypeReg, Name: "start", Mode: 0o755, Size: 9}, strings.NewReader("#!/bin/sh"))
	for i, s := range sizes {
		write(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("zeros%d", i), Mode: 0o644, Size: s}, zeros{})
	}
	for i := 0; i < n; i++ {
		write(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("f%d", i), Mode: 0o644}, nil)
	}
	for _, c := range []io.Closer{tw, zw} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// TestDefaultLimitsRefuseBombs: the two archives, refused by default
// both by Inspect and by the host script, without unpacking anything.
func TestDefaultLimitsRefuseBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 2 GiB gzip bomb and a million-entry archive")
	}
	tests := []struct {
		name  string
		sizes []int64
		n     int
		flag  string
	}{
		{"2 GiB of zeros", []int64{2 << 30}, 0, "--max-ratio"},
		// start + 1 000 000 files = 1 000 001 entries.
		{"1 000 001 entries", nil, 1_000_000, "--max-entries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := bomb(t, tc.sizes, tc.n)
			fi, _ := os.Stat(p)
			t0 := time.Now()
			_, err := release.Inspect(p)
			var le *release.LimitError
			if !errors.As(err, &le) || le.Flag != tc.flag {
				t.Fatalf("want a LimitError naming %s, got %v", tc.flag, err)
			}
			t.Logf("%d-byte artifact refused locally in %v: %v", fi.Size(), time.Since(t0).Round(time.Millisecond), err)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			t0 = time.Now()
			ok, out, _ := hostUnpack(t, data, true, hostrelease.DefaultLimits())
			if ok || !strings.Contains(out, tc.flag) {
				t.Fatalf("host: accepted=%v, want a refusal naming %s: %s", ok, tc.flag, out)
			}
			t.Logf("refused by the host script in %v", time.Since(t0).Round(time.Millisecond))
		})
	}
}
