package drill

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/seedkeys"
)

// CellPasswordPurpose is the seedkeys purpose of a cell role's password
// (hostspec's cellPassword: the same string).
func CellPasswordPurpose(app, cell string) string { return "postgres/cell/" + app + "/" + cell }

// cellWriter is the site drill's load on one dedicated cell: its data is not
// in the stack's WAL stream (its own pair, stanza and standby database), so
// the stack's writes say nothing of it. It writes into the cell's own
// database as the cell's role, through the cell's own servers (its pair and
// its standby database admit them only).
type cellWriter struct {
	app  string
	cell inventory.Cell
	w    *Writer
	// held are the acknowledged writes the promoted standby held, plus one
	// written there: the way back must keep them all.
	held []int64
}

// dedicatedCellWriters builds a writer per dedicated cell of env's stack,
// refusing a cell the drill could not measure (no server to tunnel through,
// no standby database).
func dedicatedCellWriters(env *Env, base int64) ([]*cellWriter, error) {
	var out []*cellWriter
	for _, a := range env.Inv.Apps {
		for _, c := range a.Cells {
			if !c.Dedicated() {
				continue
			}
			if len(c.Hosts) == 0 || c.Standby == "" || c.StandbyDB == "" {
				return nil, fmt.Errorf("app %s cell %s: servers %v, standby server %q, standby database %q: the site drill writes into the cell's own database through its servers on both sites", a.Name, c.Name, c.Hosts, c.Standby, c.StandbyDB)
			}
			pw, err := seedkeys.Password(env.Seed, env.Inv.Stack, CellPasswordPurpose(a.Name, c.Name))
			if err != nil {
				return nil, fmt.Errorf("cell %s/%s role password: %w", a.Name, c.Name, err)
			}
			var addrs []string
			for _, n := range c.DBNodes {
				addr, err := nodeAddr(env.Inv, n)
				if err != nil {
					return nil, err
				}
				addrs = append(addrs, addr)
			}
			ep := &pgEndpoint{env: env, Via: c.Hosts[0], User: c.Database, DB: c.Database, pass: pw}
			out = append(out, &cellWriter{app: a.Name, cell: c, w: &Writer{Endpoint: ep, Addrs: addrs, Base: base, Pace: 100 * time.Millisecond}})
		}
	}
	return out, nil
}

func (cw *cellWriter) label() string { return cw.app + "/" + cw.cell.Name }

// create makes the writes table in the cell's database.
func (cw *cellWriter) create(ctx context.Context) error {
	c, err := cw.w.Endpoint.connect(ctx, cw.w.Addrs, true)
	if err != nil {
		return fmt.Errorf("cell %s: %w", cw.label(), err)
	}
	defer c.Close(closeCtx(ctx))
	if _, err := c.Exec(ctx, CreateWritesSQL); err != nil {
		return fmt.Errorf("cell %s: %w", cw.label(), err)
	}
	return nil
}

// verifyStandby reads the cell's writes on its promoted standby database
// (through its standby server) after the switch: its own RPO, and one write
// taken there that the way back must keep.
func (cw *cellWriter) verifyStandby(ctx context.Context, inv *inventory.Inventory, t0 time.Time) (string, error) {
	h := inv.Host(cw.cell.StandbyDB)
	if h == nil {
		return "", fmt.Errorf("cell %s: standby database %q not in the inventory", cw.label(), cw.cell.StandbyDB)
	}
	port := inv.Database.Port
	if port == 0 {
		port = 5432
	}
	sep := *cw.w.Endpoint
	sep.Via = cw.cell.Standby
	c, err := sep.connect(ctx, []string{net.JoinHostPort(h.PrivateAddress, strconv.Itoa(port))}, true)
	if err != nil {
		return "", fmt.Errorf("cell %s: promoted standby database not writable: %w", cw.label(), err)
	}
	defer c.Close(closeCtx(ctx))
	acked, times := cw.w.Acked()
	present, err := presentIDs(ctx, c, cw.w.Base, cw.w.End())
	if err != nil {
		return "", err
	}
	var newest time.Time
	lost := 0
	for i, id := range acked {
		if present[id] {
			cw.held = append(cw.held, id)
			if times[i].After(newest) {
				newest = times[i]
			}
		} else if times[i].Before(t0) {
			lost++
		}
	}
	marker := cw.w.End() + 1
	if _, err := c.Exec(ctx, InsertWriteSQL, marker); err != nil {
		return "", fmt.Errorf("cell %s: write on the promoted standby database: %w", cw.label(), err)
	}
	cw.held = append(cw.held, marker)
	if newest.IsZero() {
		return "", fmt.Errorf("cell %s: none of the %d acknowledged writes reached its standby database", cw.label(), len(acked))
	}
	rpo := max(t0.Sub(newest), 0)
	return fmt.Sprintf("cell %s (own database): cross-site RPO %s; %d writes acknowledged before the partition are not on its standby database", cw.label(), round(rpo), lost), nil
}

// verifyBack checks every write the cell's standby database held is on the
// cell's pair after the way back.
func (cw *cellWriter) verifyBack(ctx context.Context) (string, error) {
	c, err := cw.w.Endpoint.connect(ctx, cw.w.Addrs, true)
	if err != nil {
		return "", fmt.Errorf("cell %s: its pair is not writable after the way back: %w", cw.label(), err)
	}
	defer c.Close(closeCtx(ctx))
	if len(cw.held) == 0 {
		return "", fmt.Errorf("cell %s: no write held on the standby site to look for", cw.label())
	}
	present, err := presentIDs(ctx, c, cw.w.Base, cw.held[len(cw.held)-1]+1)
	if err != nil {
		return "", err
	}
	if missing := MissingWrites(cw.held, present); len(missing) > 0 {
		return "", fmt.Errorf("cell %s: %d of the %d writes its standby database held are missing on its pair after the way back (first: %d)", cw.label(), len(missing), len(cw.held), missing[0])
	}
	return fmt.Sprintf("cell %s: all %d writes its standby database held are on its pair again", cw.label(), len(cw.held)), nil
}

// dedicatedCellHost reports whether h serves a dedicated cell: its servers
// reach the cell's own pair only, never the stack's.
func dedicatedCellHost(inv *inventory.Inventory, h inventory.Host) bool {
	if h.Cell == "" {
		return false
	}
	a := inv.App(h.App)
	if a == nil {
		return false
	}
	c := a.Cell(h.Cell)
	return c != nil && c.Dedicated()
}
