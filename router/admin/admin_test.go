package admin

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/belay-sh/belay/router"
)

func TestCheckRefusesHostileRequests(t *testing.T) {
	cells, err := router.ParseCells("shop", []byte("cell c1 10.0.0.1:80\ncell c2 10.0.0.2:80\n"))
	if err != nil {
		t.Fatal(err)
	}
	good := []Request{
		{Op: OpAssign, Domain: "a.test", Cell: "c1"},
		{Op: OpStep, Domain: "a.test", Cell: "c2", Step: "imported"},
		{Op: OpWait, Version: 3, TimeoutMillis: 1000},
		{Op: OpCells},
		{Op: OpAudit, Limit: 10},
		{Op: OpAudit, Domain: "a.test", Limit: 10},
		{Op: OpAssignMany, Domains: []string{"a.test", "b.test"}, Cell: "c2"},
		{Op: OpAssignMany, Domains: batch(MaxBatch), Cell: "c1"},
		{Op: OpTLS, Domain: "a.test", TLS: "on"},
		{Op: OpTLS, Domain: "a.test", TLS: "off"},
		{Op: OpCerts},
		{Op: OpCerts, Domain: "a.test"},
	}
	for _, r := range good {
		if err := Check(r, cells); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	for name, r := range map[string]Request{
		"unknown op":          {Op: "drop", Domain: "a.test"},
		"unknown cell":        {Op: OpAssign, Domain: "a.test", Cell: "c9"},
		"sentinel cell":       {Op: OpAssign, Domain: "a.test", Cell: "_frozen"},
		"wildcard":            {Op: OpAssign, Domain: "*.test", Cell: "c1"},
		"uppercase":           {Op: OpGet, Domain: "A.test"},
		"injection":           {Op: OpAssign, Domain: "a.test'; DROP TABLE x; --", Cell: "c1"},
		"bad step":            {Op: OpStep, Domain: "a.test", Cell: "c1", Step: "freezing"},
		"timeout":             {Op: OpWait, TimeoutMillis: -1},
		"multi-line actor":    {Op: OpGet, Domain: "a.test", Actor: "me\nforged line"},
		"multi-line reason":   {Op: OpAbort, Domain: "a.test", Reason: strings.Repeat("x", 501)},
		"escape in actor":     {Op: OpGet, Domain: "a.test", Actor: "ops\x1b[2K\x1b[1Galice@laptop"},
		"C1 control in actor": {Op: OpGet, Domain: "a.test", Actor: "ops\u009b2J"},
		"tab in reason":       {Op: OpAbort, Domain: "a.test", Reason: "a\tb"},
		"forged ssh login":    {Op: OpGet, Domain: "a.test", Actor: "alice@laptop (ssh login alice)"},
		"audit no limit":      {Op: OpAudit},
		"audit huge limit":    {Op: OpAudit, Limit: MaxAudit + 1},
		"audit bad domain":    {Op: OpAudit, Domain: "*.test", Limit: 5},
		"batch empty":         {Op: OpAssignMany, Cell: "c1"},
		"batch too big":       {Op: OpAssignMany, Domains: batch(MaxBatch + 1), Cell: "c1"},
		"batch wildcard":      {Op: OpAssignMany, Domains: []string{"a.test", "*.test"}, Cell: "c1"},
		"batch uppercase":     {Op: OpAssignMany, Domains: []string{"a.test", "B.test"}, Cell: "c1"},
		"batch injection":     {Op: OpAssignMany, Domains: []string{"a.test'; DROP TABLE x; --"}, Cell: "c1"},
		"batch newline":       {Op: OpAssignMany, Domains: []string{"a.test\nb.test"}, Cell: "c1"},
		"batch duplicate":     {Op: OpAssignMany, Domains: []string{"a.test", "b.test", "a.test"}, Cell: "c1"},
		"batch unknown cell":  {Op: OpAssignMany, Domains: []string{"a.test"}, Cell: "c9"},
		"batch no cell":       {Op: OpAssignMany, Domains: []string{"a.test"}},
		"domain on batch":     {Op: OpAssignMany, Domain: "x.test", Domains: []string{"a.test"}, Cell: "c1"},
		"domains on assign":   {Op: OpAssign, Domain: "a.test", Domains: []string{"b.test"}, Cell: "c1"},
		"tls no value":        {Op: OpTLS, Domain: "a.test"},
		"tls bad value":       {Op: OpTLS, Domain: "a.test", TLS: "yes"},
		"tls no domain":       {Op: OpTLS, TLS: "on"},
		"tls wildcard":        {Op: OpTLS, Domain: "*.test", TLS: "on"},
		"tls on another op":   {Op: OpGet, Domain: "a.test", TLS: "on"},
		"certs bad domain":    {Op: OpCerts, Domain: "A.test"},
	} {
		if err := Check(r, cells); err == nil {
			t.Errorf("%s: %+v accepted", name, r)
		}
	}
	for _, in := range []string{
		`{"op":"get","domain":"a.test","sql":"x"}`,
		`{"op":"get","domain":"a.test","app":"other"}`,
		`{"op":"get","domain":"a.test"}{"op":"assign","domain":"b.test","cell":"c1"}`,
		`{"op":"get","domain":"a.test"} x`,
		`[{"op":"get"}]`,
		``,
	} {
		if r, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) = %+v, want a refusal (one request, known fields only)", in, r)
		}
	}
	if r, err := Decode([]byte(" {\"op\":\"get\",\"domain\":\"a.test\"}\n")); err != nil || r.Domain != "a.test" {
		t.Errorf("one request with white space around it: %+v %v", r, err)
	}
}

func batch(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("shop-%d.test", i)
	}
	return out
}

func TestCheckBatchNamesTheBadDomain(t *testing.T) {
	err := checkBatch([]string{"a.test", "b.test", "bad_one.test"})
	if err == nil || !strings.Contains(err.Error(), "domains[2]") || !strings.Contains(err.Error(), "bad_one.test") {
		t.Errorf("error %v: expected it to name domains[2] and bad_one.test", err)
	}
}

// TestAbortReasonFitsTheHelper: an abort's reason is an error message of
// any shape; the client makes it one the helper's Check accepts.
func TestAbortReasonFitsTheHelper(t *testing.T) {
	cells, _ := router.ParseCells("shop", []byte("cell c1 10.0.0.1:80\n"))
	var sent Request
	c := &Client{App: "shop", Do: func(_ context.Context, req Request) (Response, error) { sent = req; return Response{}, nil }}
	if _, err := c.AbortMove(context.Background(), "shop", "a.test", "export failed:\n\tstderr: \x1b[31mboom\r\x00"+strings.Repeat("é", 300), "me"); err != nil {
		t.Fatal(err)
	}
	if err := Check(sent, cells); err != nil {
		t.Errorf("the client's abort %q is refused by the helper: %v", sent.Reason, err)
	}
}
