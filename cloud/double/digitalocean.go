package double

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DODroplet is a droplet known to the DigitalOcean double.
type DODroplet struct {
	ID        int
	Name      string
	Region    string
	Tags      []string
	PublicIP  string
	PrivateIP string // "" = no VPC interface
}

// DORecord is a domain record held by the DigitalOcean double.
type DORecord struct {
	ID   int
	Type string
	Name string // relative: "@" for the apex
	Data string
	TTL  int
}

// DigitalOceanDouble is a test double of the DigitalOcean API v2 endpoints belay
// uses: reserved IPs and their actions, actions, droplets by tag, and domain records.
type DigitalOceanDouble struct {
	base
	reserved map[string]*doReservedIP
	droplets map[int]*DODroplet
	actions  map[int]*doAction
	domains  map[string][]DORecord
}

type doReservedIP struct {
	ip      string
	region  string
	droplet int // 0 = unassigned
	pending int // action ID in flight, 0 = none
}

type doAction struct {
	id, resourceID int
	typ, region    string
	status         string
	pollsLeft      int
	fail           bool
	started        time.Time
	completed      *time.Time
	apply          func()
	done           func()
}

// NewDigitalOceanDouble starts a DigitalOcean double that accepts only token.
func NewDigitalOceanDouble(token string) *DigitalOceanDouble {
	d := &DigitalOceanDouble{
		reserved: map[string]*doReservedIP{},
		droplets: map[int]*DODroplet{},
		actions:  map[int]*doAction{},
		domains:  map[string][]DORecord{},
	}
	d.token = token
	d.start(d.route,
		func(w http.ResponseWriter) { doError(w, 401, "Unauthorized", "Unable to authenticate you") },
		func(w http.ResponseWriter) { doError(w, 429, "too_many_requests", "API Rate limit exceeded.") },
		func(w http.ResponseWriter) { doError(w, 500, "server_error", "Unexpected server-side error") })
	return d
}

// AddDroplet registers a droplet.
func (d *DigitalOceanDouble) AddDroplet(dr DODroplet) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := dr
	d.droplets[dr.ID] = &c
}

// AddReservedIP registers a reserved IP in region, assigned to dropletID (0 = unassigned).
func (d *DigitalOceanDouble) AddReservedIP(ip, region string, dropletID int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reserved[ip] = &doReservedIP{ip: ip, region: region, droplet: dropletID}
}

// ReservedIPDroplet returns the droplet ID the reserved IP is assigned to (0 = none).
func (d *DigitalOceanDouble) ReservedIPDroplet(ip string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r := d.reserved[ip]; r != nil {
		return r.droplet
	}
	return 0
}

// AddDomain registers a domain (zone) with its records; IDs are assigned when 0.
func (d *DigitalOceanDouble) AddDomain(zone string, records ...DORecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range records {
		if records[i].ID == 0 {
			records[i].ID = int(d.newID())
		}
	}
	d.domains[zone] = append([]DORecord(nil), records...)
}

// Records returns the zone's records sorted by ID.
func (d *DigitalOceanDouble) Records(zone string) []DORecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]DORecord(nil), d.domains[zone]...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// route serves one authenticated request; called with mu held.
func (d *DigitalOceanDouble) route(w http.ResponseWriter, r *http.Request) {
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(p) == 3 && p[0] == "v2" && p[1] == "reserved_ips" && r.Method == http.MethodGet:
		d.getReservedIP(w, p[2])
	case len(p) == 4 && p[0] == "v2" && p[1] == "reserved_ips" && p[3] == "actions" && r.Method == http.MethodPost:
		d.postReservedIPAction(w, r, p[2])
	case len(p) == 3 && p[0] == "v2" && p[1] == "actions" && r.Method == http.MethodGet:
		d.getAction(w, p[2])
	case len(p) == 2 && p[0] == "v2" && p[1] == "droplets" && r.Method == http.MethodGet:
		d.listDroplets(w, r)
	case len(p) == 4 && p[0] == "v2" && p[1] == "domains" && p[3] == "records":
		switch r.Method {
		case http.MethodGet:
			d.listRecords(w, r, p[2])
		case http.MethodPost:
			d.createRecord(w, r, p[2])
		default:
			doError(w, 405, "method_not_allowed", "method not allowed")
		}
	case len(p) == 5 && p[0] == "v2" && p[1] == "domains" && p[3] == "records":
		switch r.Method {
		case http.MethodPut:
			d.editRecord(w, r, p[2], p[4])
		case http.MethodDelete:
			d.deleteRecord(w, p[2], p[4])
		default:
			doError(w, 405, "method_not_allowed", "method not allowed")
		}
	default:
		doError(w, 404, "not_found", "The resource you were accessing could not be found.")
	}
}

func doError(w http.ResponseWriter, status int, id, msg string) {
	writeJSON(w, status, map[string]any{"id": id, "message": msg, "request_id": "double-" + strconv.Itoa(status)})
}

func doRegion(slug string) map[string]any {
	return map[string]any{"name": slug, "slug": slug, "features": []string{"private_networking", "backups", "ipv6"},
		"available": true, "sizes": []string{"s-1vcpu-1gb"}}
}

func (d *DigitalOceanDouble) dropletJSON(dr *DODroplet) map[string]any {
	v4 := []map[string]any{}
	if dr.PublicIP != "" {
		v4 = append(v4, map[string]any{"ip_address": dr.PublicIP, "netmask": "255.255.240.0", "gateway": "203.0.113.1", "type": "public"})
	}
	if dr.PrivateIP != "" {
		v4 = append(v4, map[string]any{"ip_address": dr.PrivateIP, "netmask": "255.255.240.0", "gateway": "10.10.0.1", "type": "private"})
	}
	tags := dr.Tags
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{
		"id": dr.ID, "name": dr.Name, "memory": 1024, "vcpus": 1, "disk": 25, "locked": false, "status": "active",
		"kernel": nil, "created_at": "2026-01-01T00:00:00Z", "features": []string{"private_networking"},
		"backup_ids": []int{}, "next_backup_window": nil, "snapshot_ids": []int{},
		"image":     map[string]any{"id": 1, "name": "12 x64", "distribution": "Debian", "slug": "debian-12-x64", "public": true},
		"size":      map[string]any{"slug": "s-1vcpu-1gb"},
		"size_slug": "s-1vcpu-1gb", "networks": map[string]any{"v4": v4, "v6": []any{}},
		"region": doRegion(dr.Region), "tags": tags, "volume_ids": []string{}, "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
	}
}

func (d *DigitalOceanDouble) getReservedIP(w http.ResponseWriter, ip string) {
	rip := d.reserved[ip]
	if rip == nil {
		doError(w, 404, "not_found", "The resource you were accessing could not be found.")
		return
	}
	var droplet any
	if dr := d.droplets[rip.droplet]; rip.droplet != 0 && dr != nil {
		droplet = d.dropletJSON(dr)
	}
	writeJSON(w, 200, map[string]any{"reserved_ip": map[string]any{
		"ip": rip.ip, "region": doRegion(rip.region), "droplet": droplet, "locked": rip.pending != 0,
		"project_id": "746c6152-2fa2-11ed-92d3-27aaa54e4988",
	}})
}

func (d *DigitalOceanDouble) postReservedIPAction(w http.ResponseWriter, r *http.Request, ip string) {
	rip := d.reserved[ip]
	if rip == nil {
		doError(w, 404, "not_found", "The resource you were accessing could not be found.")
		return
	}
	var req struct {
		Type      string `json:"type"`
		DropletID int    `json:"droplet_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		doError(w, 400, "bad_request", "invalid JSON body")
		return
	}
	if d.takePending() || rip.pending != 0 {
		doError(w, 422, "unprocessable_entity", "Droplet already has a pending event.")
		return
	}
	var apply func()
	switch req.Type {
	case "assign":
		dr := d.droplets[req.DropletID]
		if dr == nil {
			doError(w, 422, "unprocessable_entity", "Droplet not found.")
			return
		}
		if dr.Region != rip.region {
			doError(w, 422, "unprocessable_entity", "The droplet must be in the same region as the reserved IP.")
			return
		}
		apply = func() { rip.droplet = req.DropletID }
	case "unassign":
		if rip.droplet == 0 {
			doError(w, 422, "unprocessable_entity", "The reserved IP is not assigned to a droplet.")
			return
		}
		apply = func() { rip.droplet = 0 }
	default:
		doError(w, 422, "unprocessable_entity", fmt.Sprintf("Unknown action type %q.", req.Type))
		return
	}
	a := &doAction{
		id: int(d.newID()), resourceID: ipAsInt(ip), typ: req.Type + "_ip", region: rip.region,
		status: "in-progress", pollsLeft: d.faults.ActionPolls, fail: d.takeFail(),
		started: time.Now().UTC(), apply: apply,
	}
	rip.pending = a.id
	a.done = func() { rip.pending = 0 }
	d.actions[a.id] = a
	writeJSON(w, 201, map[string]any{"action": doActionJSON(a)})
}

func (d *DigitalOceanDouble) getAction(w http.ResponseWriter, idStr string) {
	id, _ := strconv.Atoi(idStr)
	a := d.actions[id]
	if a == nil {
		doError(w, 404, "not_found", "The resource you were accessing could not be found.")
		return
	}
	if a.status == "in-progress" {
		if a.pollsLeft > 0 {
			a.pollsLeft--
		} else {
			now := time.Now().UTC()
			a.completed = &now
			if a.fail {
				a.status = "errored"
			} else {
				a.status = "completed"
				a.apply()
			}
			a.done()
		}
	}
	writeJSON(w, 200, map[string]any{"action": doActionJSON(a)})
}

func doActionJSON(a *doAction) map[string]any {
	var completed any
	if a.completed != nil {
		completed = a.completed.Format(time.RFC3339)
	}
	return map[string]any{
		"id": a.id, "status": a.status, "type": a.typ, "started_at": a.started.Format(time.RFC3339),
		"completed_at": completed, "resource_id": a.resourceID, "resource_type": "reserved_ip",
		"region": doRegion(a.region), "region_slug": a.region,
	}
}

// ipAsInt mirrors DO's resource_id for reserved IP actions: the IPv4 address as an integer.
func ipAsInt(ip string) int {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return 0
	}
	b := a.As4()
	return int(binary.BigEndian.Uint32(b[:]))
}

func (d *DigitalOceanDouble) links(r *http.Request, pageNo, per, last int) map[string]any {
	pages := map[string]any{}
	u := func(p int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		return d.srv.URL + r.URL.Path + "?" + q.Encode()
	}
	if pageNo < last {
		pages["next"], pages["last"] = u(pageNo+1), u(last)
	}
	if pageNo > 1 {
		pages["first"], pages["prev"] = u(1), u(pageNo-1)
	}
	return map[string]any{"pages": pages}
}

func (d *DigitalOceanDouble) listDroplets(w http.ResponseWriter, r *http.Request) {
	tag := r.URL.Query().Get("tag_name")
	var ids []int
	for id, dr := range d.droplets {
		for _, t := range dr.Tags {
			if tag == "" || t == tag {
				ids = append(ids, id)
				break
			}
		}
	}
	sort.Ints(ids)
	pageIDs, pageNo, per, last := page(ids, r, 20)
	out := []map[string]any{}
	for _, id := range pageIDs {
		out = append(out, d.dropletJSON(d.droplets[id]))
	}
	writeJSON(w, 200, map[string]any{"droplets": out, "links": d.links(r, pageNo, per, last), "meta": map[string]any{"total": len(ids)}})
}

func recordJSON(rec DORecord) map[string]any {
	return map[string]any{"id": rec.ID, "type": rec.Type, "name": rec.Name, "data": rec.Data,
		"priority": nil, "port": nil, "ttl": rec.TTL, "weight": nil, "flags": nil, "tag": nil}
}

// fqdn is how DO's ?name= filter spells a record: the full name, "@" = the zone itself.
func fqdn(name, zone string) string {
	if name == "@" {
		return zone
	}
	return name + "." + zone
}

func (d *DigitalOceanDouble) listRecords(w http.ResponseWriter, r *http.Request, zone string) {
	recs, ok := d.domains[zone]
	if !ok {
		doError(w, 404, "not_found", "The resource you were accessing could not be found.")
		return
	}
	typ, name := r.URL.Query().Get("type"), r.URL.Query().Get("name")
	var match []DORecord
	for _, rec := range recs {
		if (typ == "" || rec.Type == typ) && (name == "" || fqdn(rec.Name, zone) == name) {
			match = append(match, rec)
		}
	}
	sort.Slice(match, func(i, j int) bool { return match[i].ID < match[j].ID })
	pg, pageNo, per, last := page(match, r, 20)
	out := []map[string]any{}
	for _, rec := range pg {
		out = append(out, recordJSON(rec))
	}
	writeJSON(w, 200, map[string]any{"domain_records": out, "links": d.links(r, pageNo, per, last), "meta": map[string]any{"total": len(match)}})
}

type doRecordRequest struct {
	Type string `json:"type"`
	Name string `json:"name"`
	Data string `json:"data"`
	TTL  int    `json:"ttl"`
}

func (req doRecordRequest) check(w http.ResponseWriter) bool {
	if req.Type != "A" || req.Name == "" || strings.Contains(req.Name, " ") {
		doError(w, 422, "unprocessable_entity", "Name and type A are required.")
		return false
	}
	if a, err := netip.ParseAddr(req.Data); err != nil || !a.Is4() {
		doError(w, 422, "unprocessable_entity", "Data needs to be a valid IPv4 address.")
		return false
	}
	if req.TTL != 0 && req.TTL < 30 {
		doError(w, 422, "unprocessable_entity", "TTL must be at least 30.")
		return false
	}
	return true
}

func (d *DigitalOceanDouble) createRecord(w http.ResponseWriter, r *http.Request, zone string) {
	if _, ok := d.domains[zone]; !ok {
		doError(w, 404, "not_found", "The resource you were accessing could not be found.")
		return
	}
	var req doRecordRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		doError(w, 400, "bad_request", "invalid JSON body")
		return
	}
	if !req.check(w) {
		return
	}
	if req.TTL == 0 {
		req.TTL = 1800
	}
	rec := DORecord{ID: int(d.newID()), Type: req.Type, Name: req.Name, Data: req.Data, TTL: req.TTL}
	d.domains[zone] = append(d.domains[zone], rec)
	writeJSON(w, 201, map[string]any{"domain_record": recordJSON(rec)})
}

func (d *DigitalOceanDouble) findRecord(w http.ResponseWriter, zone, idStr string) int {
	id, _ := strconv.Atoi(idStr)
	for i, rec := range d.domains[zone] {
		if rec.ID == id {
			return i
		}
	}
	doError(w, 404, "not_found", "The resource you were accessing could not be found.")
	return -1
}

func (d *DigitalOceanDouble) editRecord(w http.ResponseWriter, r *http.Request, zone, idStr string) {
	i := d.findRecord(w, zone, idStr)
	if i < 0 {
		return
	}
	var req doRecordRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		doError(w, 400, "bad_request", "invalid JSON body")
		return
	}
	rec := &d.domains[zone][i]
	if req.Type == "" {
		req.Type = rec.Type
	}
	if req.Name == "" {
		req.Name = rec.Name
	}
	if !req.check(w) {
		return
	}
	rec.Type, rec.Name, rec.Data = req.Type, req.Name, req.Data
	if req.TTL != 0 {
		rec.TTL = req.TTL
	}
	writeJSON(w, 200, map[string]any{"domain_record": recordJSON(*rec)})
}

func (d *DigitalOceanDouble) deleteRecord(w http.ResponseWriter, zone, idStr string) {
	i := d.findRecord(w, zone, idStr)
	if i < 0 {
		return
	}
	d.domains[zone] = append(d.domains[zone][:i], d.domains[zone][i+1:]...)
	w.WriteHeader(http.StatusNoContent)
}
