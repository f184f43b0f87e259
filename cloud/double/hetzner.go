package double

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// HetznerServer is a server known to the Hetzner double.
type HetznerServer struct {
	ID        int64
	Name      string
	Labels    map[string]string
	PublicIP  string
	PrivateIP string // "" = not attached to a network
	NetworkID int64
}

// HetznerFloatingIP is a floating IP held by the Hetzner double.
type HetznerFloatingIP struct {
	ID     int64
	Name   string
	IP     string
	Server int64 // 0 = unassigned
}

// HetznerDouble is a test double of the Hetzner Cloud API v1 endpoints belay
// uses: floating IPs and their assign/unassign actions, actions, servers by
// label selector, and DNS zones with their RRSets (the DNS API that replaced
// dns.hetzner.com inside the Cloud API). Bodies use hcloud-go's schema
// package, which is the wire format.
type HetznerDouble struct {
	base
	fips    map[int64]*hzFIP
	servers map[int64]*HetznerServer
	actions map[int64]*hzAction
	zones   map[int64]*hzZone
}

type hzFIP struct {
	HetznerFloatingIP
	pending int64
}

type hzZone struct {
	id     int64
	name   string
	ttl    int
	rrsets map[string]*schema.ZoneRRSet // "name/TYPE"
	locked int64
}

type hzAction struct {
	a         schema.Action
	pollsLeft int
	fail      bool
	apply     func()
	done      func()
}

// NewHetznerDouble starts a Hetzner Cloud double that accepts only token.
func NewHetznerDouble(token string) *HetznerDouble {
	h := &HetznerDouble{
		fips:    map[int64]*hzFIP{},
		servers: map[int64]*HetznerServer{},
		actions: map[int64]*hzAction{},
		zones:   map[int64]*hzZone{},
	}
	h.token = token
	h.start(h.route,
		func(w http.ResponseWriter) { hzError(w, 401, "unauthorized", "unable to authenticate") },
		func(w http.ResponseWriter) {
			hzError(w, 429, "rate_limit_exceeded", "limit of 3600 requests per hour reached")
		},
		func(w http.ResponseWriter) { hzError(w, 500, "server_error", "error within the API backend") })
	return h
}

// URL is the API endpoint to give hcloud.WithEndpoint (…/v1).
func (h *HetznerDouble) URL() string { return h.srv.URL + "/v1" }

// AddServer registers a server.
func (h *HetznerDouble) AddServer(s HetznerServer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := s
	h.servers[s.ID] = &c
}

// AddFloatingIP registers a floating IP.
func (h *HetznerDouble) AddFloatingIP(f HetznerFloatingIP) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fips[f.ID] = &hzFIP{HetznerFloatingIP: f}
}

// SetFloatingIPServer assigns the floating IP to server at once (0 = unassign), as another client would.
func (h *HetznerDouble) SetFloatingIPServer(id, server int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fips[id].Server = server
}

// FloatingIPServer returns the server the floating IP is assigned to (0 = none).
func (h *HetznerDouble) FloatingIPServer(id int64) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.fips[id]; f != nil {
		return f.Server
	}
	return 0
}

// AddZone registers a primary DNS zone with a default TTL.
func (h *HetznerDouble) AddZone(id int64, name string, ttl int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.zones[id] = &hzZone{id: id, name: name, ttl: ttl, rrsets: map[string]*schema.ZoneRRSet{}}
}

// SetRRSet stores an RRSet in zone (by ID); ttl 0 = the zone default.
func (h *HetznerDouble) SetRRSet(zoneID int64, name, typ string, ttl int, values ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	z := h.zones[zoneID]
	rs := &schema.ZoneRRSet{ID: name + "/" + typ, Name: name, Type: typ, Zone: zoneID, Labels: map[string]string{}}
	if ttl != 0 {
		rs.TTL = &ttl
	}
	for _, v := range values {
		rs.Records = append(rs.Records, schema.ZoneRRSetRecord{Value: v})
	}
	z.rrsets[rs.ID] = rs
}

// RRSet returns the values and TTL (0 = zone default) of an RRSet; ok is false when absent.
func (h *HetznerDouble) RRSet(zoneID int64, name, typ string) (values []string, ttl int, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := h.zones[zoneID].rrsets[name+"/"+typ]
	if rs == nil {
		return nil, 0, false
	}
	for _, r := range rs.Records {
		values = append(values, r.Value)
	}
	if rs.TTL != nil {
		ttl = *rs.TTL
	}
	return values, ttl, true
}

func hzError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, schema.ErrorResponse{Error: schema.Error{Code: code, Message: msg, DetailsRaw: json.RawMessage("{}")}})
}

func hzNotFound(w http.ResponseWriter, what string) {
	hzError(w, 404, "not_found", what+" not found")
}

// route serves one authenticated request; called with mu held.
func (h *HetznerDouble) route(w http.ResponseWriter, r *http.Request) {
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(p) < 2 || p[0] != "v1" {
		hzNotFound(w, "resource")
		return
	}
	p = p[1:]
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case len(p) == 1 && p[0] == "floating_ips" && get:
		h.listFloatingIPs(w, r)
	case len(p) == 2 && p[0] == "floating_ips" && get:
		if f := h.fip(w, p[1]); f != nil {
			writeJSON(w, 200, schema.FloatingIPGetResponse{FloatingIP: h.fipJSON(f)})
		}
	case len(p) == 4 && p[0] == "floating_ips" && p[2] == "actions" && post:
		if f := h.fip(w, p[1]); f != nil {
			h.fipAction(w, r, f, p[3])
		}
	case len(p) == 2 && p[0] == "actions" && get:
		h.getAction(w, p[1])
	case len(p) == 1 && p[0] == "servers" && get:
		h.listServers(w, r)
	case len(p) == 1 && p[0] == "zones" && get:
		h.listZones(w, r)
	case len(p) == 2 && p[0] == "zones" && get:
		if z := h.zone(w, p[1]); z != nil {
			writeJSON(w, 200, schema.ZoneGetResponse{Zone: h.zoneJSON(z)})
		}
	case len(p) == 3 && p[0] == "zones" && p[2] == "rrsets" && post:
		if z := h.zone(w, p[1]); z != nil {
			h.createRRSet(w, r, z)
		}
	case len(p) == 5 && p[0] == "zones" && p[2] == "rrsets" && get:
		if z := h.zone(w, p[1]); z != nil {
			rs := z.rrsets[p[3]+"/"+p[4]]
			if rs == nil {
				hzNotFound(w, "rrset")
				return
			}
			writeJSON(w, 200, schema.ZoneRRSetGetResponse{RRSet: *rs})
		}
	case len(p) == 7 && p[0] == "zones" && p[2] == "rrsets" && p[5] == "actions" && post:
		if z := h.zone(w, p[1]); z != nil {
			h.rrsetAction(w, r, z, p[3]+"/"+p[4], p[6])
		}
	default:
		hzNotFound(w, "resource")
	}
}

func (h *HetznerDouble) fip(w http.ResponseWriter, idStr string) *hzFIP {
	id, _ := strconv.ParseInt(idStr, 10, 64)
	f := h.fips[id]
	if f == nil {
		hzNotFound(w, "floating_ip")
	}
	return f
}

var hzCreated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func hzLocation() schema.Location {
	return schema.Location{ID: 1, Name: "fsn1", Description: "Falkenstein DC Park 1", Country: "DE", City: "Falkenstein",
		Latitude: 50.47612, Longitude: 12.370071, NetworkZone: "eu-central"}
}

func (h *HetznerDouble) fipJSON(f *hzFIP) schema.FloatingIP {
	out := schema.FloatingIP{
		ID: f.ID, Name: f.Name, Created: hzCreated, IP: f.IP, Type: "ipv4", HomeLocation: hzLocation(),
		DNSPtr: []schema.FloatingIPDNSPtr{{IP: f.IP, DNSPtr: "static." + f.IP + ".clients.your-server.de"}},
		Labels: map[string]string{},
	}
	if f.Server != 0 {
		s := f.Server
		out.Server = &s
	}
	return out
}

func (h *HetznerDouble) listFloatingIPs(w http.ResponseWriter, r *http.Request) {
	var ids []int64
	for id, f := range h.fips {
		if n := r.URL.Query().Get("name"); n == "" || n == f.Name {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	pg, pageNo, per, last := page(ids, r, 25)
	out := schema.FloatingIPListResponse{FloatingIPs: []schema.FloatingIP{}}
	for _, id := range pg {
		out.FloatingIPs = append(out.FloatingIPs, h.fipJSON(h.fips[id]))
	}
	writeJSON(w, 200, struct {
		schema.FloatingIPListResponse
		schema.MetaResponse
	}{out, hzMeta(pageNo, per, last, len(ids))})
}

func hzMeta(pageNo, per, last, total int) schema.MetaResponse {
	m := schema.MetaPagination{Page: pageNo, PerPage: per, LastPage: last, TotalEntries: total}
	if pageNo > 1 {
		m.PreviousPage = pageNo - 1
	}
	if pageNo < last {
		m.NextPage = pageNo + 1
	}
	return schema.MetaResponse{Meta: schema.Meta{Pagination: &m}}
}

// newAction records an action over resources; apply runs when it succeeds, done when it ends either way.
func (h *HetznerDouble) newAction(command string, res []schema.ActionResourceReference, apply, done func()) *hzAction {
	a := &hzAction{
		a:         schema.Action{ID: h.newID(), Status: "running", Command: command, Started: time.Now().UTC(), Resources: res},
		pollsLeft: h.faults.ActionPolls, fail: h.takeFail(), apply: apply, done: done,
	}
	h.actions[a.a.ID] = a
	return a
}

func (h *HetznerDouble) fipAction(w http.ResponseWriter, r *http.Request, f *hzFIP, verb string) {
	if h.takePending() || f.pending != 0 {
		hzError(w, 423, "locked", "floating ip is locked: another action is running")
		return
	}
	res := []schema.ActionResourceReference{{ID: f.ID, Type: "floating_ip"}}
	var apply func()
	switch verb {
	case "assign":
		var req schema.FloatingIPActionAssignRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			hzError(w, 400, "json_error", "invalid JSON")
			return
		}
		if h.servers[req.Server] == nil {
			hzError(w, 422, "invalid_input", fmt.Sprintf("invalid input in field 'server': server %d not found", req.Server))
			return
		}
		res = append(res, schema.ActionResourceReference{ID: req.Server, Type: "server"})
		apply = func() { f.Server = req.Server }
	case "unassign":
		apply = func() { f.Server = 0 }
	default:
		hzNotFound(w, "action")
		return
	}
	a := h.newAction(verb+"_floating_ip", res, apply, func() { f.pending = 0 })
	f.pending = a.a.ID
	writeJSON(w, 201, schema.ActionGetResponse{Action: a.a})
}

func (h *HetznerDouble) getAction(w http.ResponseWriter, idStr string) {
	id, _ := strconv.ParseInt(idStr, 10, 64)
	a := h.actions[id]
	if a == nil {
		hzNotFound(w, "action")
		return
	}
	if a.a.Status == "running" {
		if a.pollsLeft > 0 {
			a.pollsLeft--
			a.a.Progress = 50
		} else {
			now := time.Now().UTC()
			a.a.Finished = &now
			a.a.Progress = 100
			if a.fail {
				a.a.Status = "error"
				a.a.Error = &schema.ActionError{Code: "action_failed", Message: "Action failed"}
			} else {
				a.a.Status = "success"
				a.apply()
			}
			a.done()
		}
	}
	writeJSON(w, 200, schema.ActionGetResponse{Action: a.a})
}

func (h *HetznerDouble) serverJSON(s *HetznerServer) schema.Server {
	labels := s.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	out := schema.Server{
		ID: s.ID, Name: s.Name, Status: "running", Created: hzCreated, Labels: labels,
		PublicNet: schema.ServerPublicNet{
			IPv4:        schema.ServerPublicNetIPv4{ID: s.ID + 100000, IP: s.PublicIP, DNSPtr: "static.example"},
			IPv6:        schema.ServerPublicNetIPv6{ID: s.ID + 200000, IP: "2001:db8::/64", DNSPtr: []schema.ServerPublicNetIPv6DNSPtr{}},
			FloatingIPs: []int64{},
			Firewalls:   []schema.ServerFirewall{},
		},
		PrivateNet:      []schema.ServerPrivateNet{},
		ServerType:      schema.ServerType{ID: 1, Name: "cx22", Description: "CX22", Cores: 2, Memory: 4, Disk: 40, StorageType: "local", CPUType: "shared", Architecture: "x86"},
		IncludedTraffic: 21990232555520,
		Location:        hzLocation(),
		Volumes:         []int64{},
		LoadBalancers:   []int64{},
		PrimaryDiskSize: 40,
	}
	for _, f := range h.fips {
		if f.Server == s.ID {
			out.PublicNet.FloatingIPs = append(out.PublicNet.FloatingIPs, f.ID)
		}
	}
	if s.PrivateIP != "" {
		out.PrivateNet = append(out.PrivateNet, schema.ServerPrivateNet{Network: s.NetworkID, IP: s.PrivateIP, AliasIPs: []string{}, MACAddress: "86:00:00:00:00:01"})
	}
	return out
}

// matchSelector implements the label selector forms the Hetzner API documents:
// k=v, k==v, k!=v, k (exists), !k (absent), comma-separated (AND).
func matchSelector(sel string, labels map[string]string) (bool, error) {
	if strings.TrimSpace(sel) == "" {
		return true, nil
	}
	for _, term := range strings.Split(sel, ",") {
		term = strings.TrimSpace(term)
		switch {
		case strings.Contains(term, "!="):
			k, v, _ := strings.Cut(term, "!=")
			if labels[strings.TrimSpace(k)] == strings.TrimSpace(v) {
				return false, nil
			}
		case strings.Contains(term, "=="):
			k, v, _ := strings.Cut(term, "==")
			if got, ok := labels[strings.TrimSpace(k)]; !ok || got != strings.TrimSpace(v) {
				return false, nil
			}
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(term, "=")
			if got, ok := labels[strings.TrimSpace(k)]; !ok || got != strings.TrimSpace(v) {
				return false, nil
			}
		case strings.HasPrefix(term, "!"):
			if _, ok := labels[strings.TrimPrefix(term, "!")]; ok {
				return false, nil
			}
		case term == "" || strings.ContainsAny(term, " ()"):
			return false, fmt.Errorf("invalid label selector %q", sel)
		default:
			if _, ok := labels[term]; !ok {
				return false, nil
			}
		}
	}
	return true, nil
}

func (h *HetznerDouble) listServers(w http.ResponseWriter, r *http.Request) {
	sel := r.URL.Query().Get("label_selector")
	var ids []int64
	for id, s := range h.servers {
		ok, err := matchSelector(sel, s.Labels)
		if err != nil {
			hzError(w, 400, "invalid_input", err.Error())
			return
		}
		if ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	pg, pageNo, per, last := page(ids, r, 25)
	out := schema.ServerListResponse{Servers: []schema.Server{}}
	for _, id := range pg {
		out.Servers = append(out.Servers, h.serverJSON(h.servers[id]))
	}
	writeJSON(w, 200, struct {
		schema.ServerListResponse
		schema.MetaResponse
	}{out, hzMeta(pageNo, per, last, len(ids))})
}

func (h *HetznerDouble) zone(w http.ResponseWriter, idOrName string) *hzZone {
	for _, z := range h.zones {
		if strconv.FormatInt(z.id, 10) == idOrName || z.name == idOrName {
			return z
		}
	}
	hzNotFound(w, "zone")
	return nil
}

func (h *HetznerDouble) zoneJSON(z *hzZone) schema.Zone {
	return schema.Zone{
		ID: z.id, Name: z.name, Created: hzCreated, TTL: z.ttl, Mode: "primary", Status: "ok",
		PrimaryNameservers: []schema.ZonePrimaryNameserver{}, Labels: map[string]string{}, Registrar: "other",
		RecordCount: len(z.rrsets),
		AuthoritativeNameservers: schema.ZoneAuthoritativeNameservers{
			Assigned:            []string{"hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de."},
			Delegated:           []string{"hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de."},
			DelegationLastCheck: hzCreated, DelegationStatus: "valid",
		},
	}
}

func (h *HetznerDouble) listZones(w http.ResponseWriter, r *http.Request) {
	var ids []int64
	for id, z := range h.zones {
		if n := r.URL.Query().Get("name"); n == "" || n == z.name {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	pg, pageNo, per, last := page(ids, r, 25)
	out := schema.ZoneListResponse{Zones: []schema.Zone{}}
	for _, id := range pg {
		out.Zones = append(out.Zones, h.zoneJSON(h.zones[id]))
	}
	writeJSON(w, 200, struct {
		schema.ZoneListResponse
		schema.MetaResponse
	}{out, hzMeta(pageNo, per, last, len(ids))})
}

func checkARecords(recs []schema.ZoneRRSetRecord) error {
	if len(recs) == 0 {
		return fmt.Errorf("invalid input in field 'records': at least one record is required")
	}
	for _, rec := range recs {
		if a, err := netip.ParseAddr(rec.Value); err != nil || !a.Is4() {
			return fmt.Errorf("invalid input in field 'records': %q is not an IPv4 address", rec.Value)
		}
	}
	return nil
}

func (h *HetznerDouble) createRRSet(w http.ResponseWriter, r *http.Request, z *hzZone) {
	var req schema.ZoneRRSetCreateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		hzError(w, 400, "json_error", "invalid JSON")
		return
	}
	if req.Type != "A" {
		hzError(w, 422, "invalid_input", "invalid input in field 'type'")
		return
	}
	if err := checkARecords(req.Records); err != nil {
		hzError(w, 422, "invalid_input", err.Error())
		return
	}
	key := req.Name + "/" + req.Type
	if z.rrsets[key] != nil {
		hzError(w, 409, "uniqueness_error", "rrset already exists")
		return
	}
	rs := &schema.ZoneRRSet{ID: key, Name: req.Name, Type: req.Type, TTL: req.TTL, Records: req.Records, Zone: z.id, Labels: map[string]string{}}
	z.rrsets[key] = rs
	a := h.newAction("create_rrset", []schema.ActionResourceReference{{ID: z.id, Type: "zone"}}, func() {}, func() {})
	writeJSON(w, 201, schema.ZoneRRSetCreateResponse{RRSet: *rs, Action: a.a})
}

func (h *HetznerDouble) rrsetAction(w http.ResponseWriter, r *http.Request, z *hzZone, key, verb string) {
	rs := z.rrsets[key]
	if rs == nil {
		hzNotFound(w, "rrset")
		return
	}
	if h.takePending() || z.locked != 0 {
		hzError(w, 423, "locked", "zone is locked: another action is running")
		return
	}
	var apply func()
	switch verb {
	case "set_records":
		var req schema.ZoneRRSetSetRecordsRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			hzError(w, 400, "json_error", "invalid JSON")
			return
		}
		if err := checkARecords(req.Records); err != nil {
			hzError(w, 422, "invalid_input", err.Error())
			return
		}
		apply = func() { rs.Records = req.Records }
	case "change_ttl":
		var req schema.ZoneRRSetChangeTTLRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			hzError(w, 400, "json_error", "invalid JSON")
			return
		}
		apply = func() { rs.TTL = req.TTL }
	default:
		hzNotFound(w, "action")
		return
	}
	a := h.newAction(verb, []schema.ActionResourceReference{{ID: z.id, Type: "zone"}}, apply, func() { z.locked = 0 })
	z.locked = a.a.ID
	writeJSON(w, 201, schema.ActionGetResponse{Action: a.a})
}
