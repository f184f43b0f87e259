// Package admin is the wire between the shop commands on an operator's
// machine and the mapping database, which is never public: the commands send
// one Request (JSON) over the pinned SSH channel to `sudo belay host shop-db
// --app APP` on a router host, which checks it, runs it against the database
// with the router's root-only DSN, and answers one Response. Client makes
// that look like the store to router/move, so a move runs the same code over
// SSH as in the tests against a local database.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode"

	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/store"
)

// Ops of a request.
const (
	OpGet    = "get"
	OpAssign = "assign"
	// OpAssignMany maps Domains to Cell in one transaction (bulk.go).
	OpAssignMany = "assign-many"
	OpBegin      = "move-begin"
	OpStep       = "move-step"
	OpFinish     = "move-finish"
	OpAbort      = "move-abort"
	OpWait       = "wait"
	OpCells      = "cells"
	OpAudit      = "audit"
	// OpTLS turns a shop's own certificate on or off (TLS "on"/"off");
	// OpCerts lists every router's certificate states (of Domain if set).
	OpTLS   = "tls"
	OpCerts = "certs"
)

// SSHLoginTag starts what the router helper appends to the actor: the SSH
// login sudo ran it for.
const SSHLoginTag = "(ssh login "

// MaxAudit bounds the audit rows one request returns.
const MaxAudit = 1000

// Request is one operation.
type Request struct {
	Op     string `json:"op"`
	Domain string `json:"domain,omitempty"`
	// Domains are the shops of OpAssignMany (1-MaxBatch, distinct).
	Domains []string `json:"domains,omitempty"`
	Cell    string   `json:"cell,omitempty"`
	Step    string   `json:"step,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	// Actor is who asks ("user@laptop"), recorded in the audit; the helper
	// appends the SSH login it runs for.
	Actor   string `json:"actor,omitempty"`
	Version int64  `json:"version,omitempty"`
	// Limit is the number of audit rows (OpAudit), 1-MaxAudit.
	Limit int `json:"limit,omitempty"`
	// TLS is OpTLS's "on" or "off".
	TLS           string `json:"tls,omitempty"`
	TimeoutMillis int64  `json:"timeoutMillis,omitempty"`
}

// CellInfo is one cell in `belay cells`.
type CellInfo struct {
	Name   string   `json:"name"`
	Addrs  []string `json:"addrs"`
	Shops  int      `json:"shops"`
	Frozen int      `json:"frozen"`
	// Health is "up" or "down: <why>", probed from this router.
	Health string `json:"health"`
	// Release is filled by the command from the cell's hosts.
	Release string `json:"release,omitempty"`
	// Database is filled by the command from the pg_auto_failover monitor
	// (never by the router: it is not admitted to a dedicated pair).
	Database *DBHealth `json:"database,omitempty"`
}

// Response is the answer.
type Response struct {
	Shop    *router.Shop   `json:"shop,omitempty"`
	Version int64          `json:"version,omitempty"`
	Routers []store.Router `json:"routers,omitempty"`
	Cells   []CellInfo     `json:"cells,omitempty"`
	Default string         `json:"default,omitempty"`
	// Unplaced counts shops on cells this router does not know.
	Unplaced int              `json:"unplaced,omitempty"`
	Audit    []store.AuditRow `json:"audit,omitempty"`
	// Assigned is OpAssignMany's answer, one per domain, in request order.
	Assigned []store.Assigned `json:"assigned,omitempty"`
	// Certs is OpCerts's answer.
	Certs []store.Cert `json:"certs,omitempty"`
	Error string       `json:"error,omitempty"`
}

var stepOK = map[string]bool{"exported": true, "imported": true}

// Check validates a request against the router's cells before it reaches the database.
func Check(req Request, cells router.Cells) error {
	switch req.Op {
	case OpGet, OpAssign, OpBegin, OpStep, OpFinish, OpAbort, OpTLS:
		if err := router.CheckDomain(req.Domain); err != nil {
			return fmt.Errorf("domain: %w", err)
		}
	case OpAssignMany:
		if req.Domain != "" {
			return fmt.Errorf("domain: not for op %s (its shops are in domains)", OpAssignMany)
		}
		if err := checkBatch(req.Domains); err != nil {
			return err
		}
	case OpWait, OpCells:
	case OpAudit, OpCerts:
		if req.Domain != "" {
			if err := router.CheckDomain(req.Domain); err != nil {
				return fmt.Errorf("domain: %w", err)
			}
		}
		if req.Op == OpAudit && (req.Limit < 1 || req.Limit > MaxAudit) {
			return fmt.Errorf("limit %d: expected 1-%d", req.Limit, MaxAudit)
		}
	default:
		return fmt.Errorf("op %q: expected one of get, assign, assign-many, move-begin, move-step, move-finish, move-abort, wait, cells, audit, tls, certs", req.Op)
	}
	if req.Op != OpAssignMany && len(req.Domains) > 0 {
		return fmt.Errorf("domains: only for op %s", OpAssignMany)
	}
	switch req.Op {
	case OpAssign, OpAssignMany, OpBegin, OpStep, OpFinish:
		if !cells.Has(req.Cell) {
			return fmt.Errorf("cell %q: not a cell of %s (cells: %s)", req.Cell, cells.App, strings.Join(cells.Names(), ", "))
		}
	}
	if (req.Op == OpTLS) != (req.TLS != "") || req.Op == OpTLS && req.TLS != "on" && req.TLS != "off" {
		return fmt.Errorf("tls %q: expected on or off, and only for op %s", req.TLS, OpTLS)
	}
	if req.Op == OpStep && !stepOK[req.Step] {
		return fmt.Errorf("step %q: expected exported or imported", req.Step)
	}
	if req.TimeoutMillis < 0 || req.TimeoutMillis > 600000 {
		return fmt.Errorf("timeoutMillis %d: expected 0-600000", req.TimeoutMillis)
	}
	for name, v := range map[string]string{"actor": req.Actor, "reason": req.Reason} {
		// No control character at all: the audit is printed on operators'
		// terminals (belay shop audit), where ESC sequences would rewrite it.
		if len(v) > 500 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return fmt.Errorf("%s: at most 500 characters on one line, without control characters", name)
		}
	}
	// The helper appends the SSH login sudo names (SSHLoginTag): a caller's
	// own would read as if it were that.
	if strings.Contains(req.Actor, SSHLoginTag) {
		return fmt.Errorf("actor %q: must not contain %q (the helper adds the SSH login)", req.Actor, SSHLoginTag)
	}
	return nil
}

// Serve runs a checked request.
func Serve(ctx context.Context, st *store.Store, cells router.Cells, req Request, probe func(addr string) error) (Response, error) {
	var res Response
	var err error
	app := cells.App
	switch req.Op {
	case OpGet:
		res.Shop, err = st.Get(ctx, app, req.Domain)
	case OpAssign:
		res.Version, err = st.Assign(ctx, app, req.Domain, req.Cell, req.Actor)
	case OpAssignMany:
		res.Assigned, res.Version, err = st.AssignMany(ctx, app, req.Domains, req.Cell, req.Actor, fmt.Sprintf("batch of %d", len(req.Domains)))
	case OpBegin:
		res.Version, err = st.BeginMove(ctx, app, req.Domain, req.Cell, req.Actor)
	case OpStep:
		err = st.SetStep(ctx, app, req.Domain, req.Cell, req.Step, req.Actor)
	case OpFinish:
		res.Version, err = st.FinishMove(ctx, app, req.Domain, req.Cell, req.Actor)
	case OpAbort:
		res.Version, err = st.AbortMove(ctx, app, req.Domain, req.Reason, req.Actor)
	case OpWait:
		res.Routers, err = st.WaitApplied(ctx, app, req.Version, time.Duration(req.TimeoutMillis)*time.Millisecond)
	case OpCells:
		res, err = cellsInfo(ctx, st, cells, probe)
	case OpAudit:
		res.Audit, err = st.Audit(ctx, app, req.Domain, req.Limit)
	case OpTLS:
		res.Version, err = st.SetTLS(ctx, app, req.Domain, req.TLS == "on", req.Actor)
	case OpCerts:
		res.Certs, err = st.Certs(ctx, app, req.Domain)
	}
	return res, err
}

func cellsInfo(ctx context.Context, st *store.Store, cells router.Cells, probe func(addr string) error) (Response, error) {
	res := Response{Default: cells.Default}
	counts, err := st.Counts(ctx, cells.App)
	if err != nil {
		return res, err
	}
	by := map[string]store.CellCount{}
	for _, c := range counts {
		by[c.Cell] = c
		if !cells.Has(c.Cell) {
			res.Unplaced += c.Shops
		}
	}
	for _, c := range cells.Cells {
		ci := CellInfo{Name: c.Name, Shops: by[c.Name].Shops, Frozen: by[c.Name].Frozen, Health: "up"}
		var errs []string
		for _, a := range c.Addrs {
			ci.Addrs = append(ci.Addrs, a.String())
			if err := probe(a.String()); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			ci.Health = "down: " + strings.Join(errs, "; ")
		}
		res.Cells = append(res.Cells, ci)
	}
	res.Routers, err = st.Routers(ctx, cells.App)
	return res, err
}

// TCPProbe is the default health probe: a TCP connect to the cell's entry point.
func TCPProbe(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// Decode reads a request, refusing unknown fields.
func Decode(b []byte) (Request, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("shop-db request: not the JSON belay shop sends: %w", err)
	}
	// One request: anything after it (a second object) is refused, not ignored.
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, fmt.Errorf("shop-db request: one JSON object expected, found more after it")
	}
	return r, nil
}

// Client runs requests through Do (SSH to a router in the CLI) and
// implements router/move's DB.
type Client struct {
	App string
	Do  func(ctx context.Context, req Request) (Response, error)
}

func (c *Client) call(ctx context.Context, req Request) (Response, error) {
	res, err := c.Do(ctx, req)
	if err == nil && res.Error != "" {
		err = errors.New(res.Error)
	}
	return res, err
}

// Get implements move.DB.
func (c *Client) Get(ctx context.Context, app, domain string) (*router.Shop, error) {
	res, err := c.call(ctx, Request{Op: OpGet, Domain: domain})
	return res.Shop, err
}

// Assign maps a new shop.
func (c *Client) Assign(ctx context.Context, app, domain, cell, actor string) (int64, error) {
	res, err := c.call(ctx, Request{Op: OpAssign, Domain: domain, Cell: cell, Actor: actor})
	return res.Version, err
}

// BeginMove implements move.DB.
func (c *Client) BeginMove(ctx context.Context, app, domain, to, actor string) (int64, error) {
	res, err := c.call(ctx, Request{Op: OpBegin, Domain: domain, Cell: to, Actor: actor})
	return res.Version, err
}

// SetStep implements move.DB.
func (c *Client) SetStep(ctx context.Context, app, domain, to, step, actor string) error {
	_, err := c.call(ctx, Request{Op: OpStep, Domain: domain, Cell: to, Step: step, Actor: actor})
	return err
}

// FinishMove implements move.DB.
func (c *Client) FinishMove(ctx context.Context, app, domain, to, actor string) (int64, error) {
	res, err := c.call(ctx, Request{Op: OpFinish, Domain: domain, Cell: to, Actor: actor})
	return res.Version, err
}

// AbortMove implements move.DB.
func (c *Client) AbortMove(ctx context.Context, app, domain, reason, actor string) (int64, error) {
	if len(reason) > 400 {
		reason = reason[:400]
	}
	// The helper refuses control characters (Check): an error's tabs and
	// newlines become spaces.
	reason = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, reason)
	res, err := c.call(ctx, Request{Op: OpAbort, Domain: domain, Reason: reason, Actor: actor})
	return res.Version, err
}

// WaitApplied implements move.DB.
func (c *Client) WaitApplied(ctx context.Context, app string, version int64, timeout time.Duration) ([]store.Router, error) {
	res, err := c.call(ctx, Request{Op: OpWait, Version: version, TimeoutMillis: timeout.Milliseconds()})
	return res.Routers, err
}

// Audit reads the last limit audit rows (of one shop if domain is set).
func (c *Client) Audit(ctx context.Context, domain string, limit int) ([]store.AuditRow, error) {
	res, err := c.call(ctx, Request{Op: OpAudit, Domain: domain, Limit: limit})
	return res.Audit, err
}

// SetTLS turns domain's own certificate on or off.
func (c *Client) SetTLS(ctx context.Context, domain string, on bool, actor string) (int64, error) {
	v := "off"
	if on {
		v = "on"
	}
	res, err := c.call(ctx, Request{Op: OpTLS, Domain: domain, TLS: v, Actor: actor})
	return res.Version, err
}

// Certs lists every router's certificate states (of one shop if domain is set).
func (c *Client) Certs(ctx context.Context, domain string) ([]store.Cert, error) {
	res, err := c.call(ctx, Request{Op: OpCerts, Domain: domain})
	return res.Certs, err
}

// Cells asks for the cells summary.
func (c *Client) Cells(ctx context.Context) (Response, error) {
	return c.call(ctx, Request{Op: OpCells})
}
