package traffic

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

func baseSpec(stage Stage) Spec {
	return Spec{
		App:         "shop-app",
		Port:        3000,
		StableAddrs: []string{"10.213.0.12", "10.213.0.11"},
		CanaryAddrs: []string{"10.213.0.12"},
		Stage:       stage,
	}
}

func TestRenderStable(t *testing.T) {
	f, err := Render(baseSpec(Stage{Kind: Stable}))
	if err != nil {
		t.Fatal(err)
	}
	// No map_hash_* directives: the stable stage (also a rollback) has no maps.
	wantHTTP := `# Managed by belay deploy; rewritten at every stage change. App shop-app, stage stable.
upstream belay_shop-app_stable {
    zone belay_shop-app_stable 64k;
    server 10.213.0.11:3000;
    server 10.213.0.12:3000;
    keepalive 16;
}
upstream belay_shop-app_canary {
    zone belay_shop-app_canary 64k;
    server 10.213.0.12:3001;
    keepalive 16;
}
`
	wantRouting := `# Managed by belay deploy; rewritten at every stage change. App shop-app, stage stable.
set $belay_pool stable;
`
	if string(f.HTTP) != wantHTTP {
		t.Errorf("http.conf:\n%s\nwant:\n%s", f.HTTP, wantHTTP)
	}
	if string(f.Routing) != wantRouting {
		t.Errorf("routing.conf:\n%s\nwant:\n%s", f.Routing, wantRouting)
	}
}

func TestRenderStableWithoutCanary(t *testing.T) {
	s := baseSpec(Stage{Kind: Stable})
	s.CanaryAddrs = nil
	f, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(f.HTTP, []byte("_canary")) {
		t.Errorf("stable stage without canary hosts rendered a canary upstream:\n%s", f.HTTP)
	}
}

func TestRenderWhitelistShape(t *testing.T) {
	s := baseSpec(Stage{Kind: Whitelist, Rules: Rules{
		Shops:   []string{"B.example.com", "a.example.com", "a.example.com."},
		Clients: []string{"192.0.2.0/24", "198.51.100.7", "2001:db8::/32"},
		Headers: []Match{{"X-Beta", "on"}, {"x-beta", "ON"}, {"X-Team", "~qa"}},
		Cookies: []Match{{"beta", "default"}},
	}})
	s.Keys = Keys{Param: "store", Header: "X-Store", Cookie: "store_c"}
	f, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	h := string(f.HTTP)
	for _, want := range []string{
		"stage whitelist.\nmap_hash_bucket_size 512;\nmap_hash_max_size 65536;\nupstream belay_shop-app_stable {",
		"map $arg_store $belay_shop_app_wl_param {\n    default 0;\n    \"a.example.com\" 1;\n    \"b.example.com\" 1;\n}\n",
		"map $http_x_store $belay_shop_app_wl_header {",
		"map $cookie_store_c $belay_shop_app_wl_cookie {",
		"geo $remote_addr $belay_shop_app_wl_client {\n    default 0;\n    192.0.2.0/24 1;\n    198.51.100.7/32 1;\n    2001:db8::/32 1;\n}\n",
		// Two spellings of one header and value collapse into one key (nginx maps ignore case).
		"map $http_x_beta $belay_shop_app_wl_h0 {\n    default 0;\n    \"on\" 1;\n}\n",
		// A leading ~ would make a regex; the backslash keeps it a literal.
		"map $http_x_team $belay_shop_app_wl_h1 {\n    default 0;\n    \"\\~qa\" 1;\n}\n",
		"map $cookie_beta $belay_shop_app_wl_c0 {\n    default 0;\n    \"\\default\" 1;\n}\n",
		"map $belay_shop_app_wl $belay_shop_app_pool {\n    default stable;\n    1 canary;\n}\n",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("http.conf lacks\n%s\ngot:\n%s", want, h)
		}
	}
	if !strings.Contains(string(f.Routing), "set $belay_pool $belay_shop_app_pool;\n") {
		t.Errorf("routing.conf:\n%s", f.Routing)
	}
}

func TestRenderPercent(t *testing.T) {
	f, err := Render(baseSpec(Stage{Kind: Percent, Percent: 10}))
	if err != nil {
		t.Fatal(err)
	}
	if want := "split_clients \"$remote_addr belay-shop-app\" $belay_shop_app_split {\n    10% canary;\n    * stable;\n}\n"; !strings.Contains(string(f.HTTP), want) {
		t.Errorf("http.conf lacks %q:\n%s", want, f.HTTP)
	}
	if want := "set $belay_pool $belay_shop_app_split;\n"; !strings.HasSuffix(string(f.Routing), want) {
		t.Errorf("routing.conf:\n%s", f.Routing)
	}
	f, err = Render(baseSpec(Stage{Kind: Percent, Percent: 50, Sticky: ByShop, Rules: Rules{Shops: []string{"a.example.com"}}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"map \"$arg_shop|$http_x_shop_domain|$cookie_shop\" $belay_shop_app_shopkey {",
		"split_clients \"$belay_shop_app_shopkey belay-shop-app\" $belay_shop_app_split {\n    50% canary;",
		"map $belay_shop_app_wl $belay_shop_app_pool {\n    default $belay_shop_app_split;\n    1 canary;\n}\n",
	} {
		if !strings.Contains(string(f.HTTP), want) {
			t.Errorf("http.conf lacks %q:\n%s", want, f.HTTP)
		}
	}
}

func TestRenderFull(t *testing.T) {
	f, err := Render(baseSpec(Stage{Kind: Full}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(f.Routing), "set $belay_pool canary;\n") {
		t.Errorf("routing.conf:\n%s", f.Routing)
	}
}

func TestRenderDeterministic(t *testing.T) {
	a := baseSpec(Stage{Kind: Whitelist, Rules: Rules{
		Shops:   []string{"c.example.com", "a.example.com", "b.example.com"},
		Clients: []string{"10.0.0.0/8", "127.0.0.1", "::1"},
		Headers: []Match{{"X-B", "2"}, {"X-A", "1"}},
	}})
	b := baseSpec(Stage{Kind: Whitelist, Rules: Rules{
		Shops:   []string{"b.example.com", "c.example.com", "a.example.com"},
		Clients: []string{"::1", "127.0.0.1", "10.0.0.0/8"},
		Headers: []Match{{"X-A", "1"}, {"X-B", "2"}},
	}})
	b.StableAddrs = []string{"10.213.0.11", "10.213.0.12"}
	fa, err := Render(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := Render(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fa.HTTP, fb.HTTP) || !bytes.Equal(fa.Routing, fb.Routing) {
		t.Errorf("same spec in another order rendered differently:\n%s\n---\n%s", fa.HTTP, fb.HTTP)
	}
}

func TestValidate(t *testing.T) {
	wl := func(r Rules) Stage { return Stage{Kind: Whitelist, Rules: r} }
	tests := []struct {
		name string
		mod  func(*Spec)
		want string // substring of the error
	}{
		{"bad app", func(s *Spec) { s.App = "Shop_App" }, `app: "Shop_App"`},
		{"port 0", func(s *Spec) { s.Port = 0 }, "port: 0"},
		{"port 65535 leaves no canary port", func(s *Spec) { s.Port = 65535 }, "port: 65535"},
		{"no stable", func(s *Spec) { s.StableAddrs = nil }, "stable addresses: empty"},
		{"bad stable addr", func(s *Spec) { s.StableAddrs = []string{"10.0.0.1:80"} }, `stable addresses[0]: "10.0.0.1:80" is not an IP address`},
		{"no canary in whitelist", func(s *Spec) {
			s.CanaryAddrs = nil
			s.Stage = wl(Rules{Shops: []string{"a.example.com"}})
		}, "canary addresses: empty, a whitelist stage"},
		{"no canary in full", func(s *Spec) { s.CanaryAddrs = nil; s.Stage = Stage{Kind: Full} }, "canary addresses: empty, a full stage"},
		{"bad canary addr", func(s *Spec) { s.CanaryAddrs = []string{"canary-1"} }, `canary addresses[0]: "canary-1"`},
		{"empty whitelist", func(s *Spec) { s.Stage = wl(Rules{}) }, "whitelist: no shops"},
		{"unknown kind", func(s *Spec) { s.Stage = Stage{Kind: "half"} }, `unknown kind "half"`},
		{"percent 0", func(s *Spec) { s.Stage = Stage{Kind: Percent} }, "percent: 0, expected 1-99"},
		{"percent 100", func(s *Spec) { s.Stage = Stage{Kind: Percent, Percent: 100} }, "percent: 100, expected 1-99 (use the full stage"},
		{"percent -5", func(s *Spec) { s.Stage = Stage{Kind: Percent, Percent: -5} }, "percent: -5"},
		{"percent on whitelist", func(s *Spec) {
			s.Stage = Stage{Kind: Whitelist, Percent: 10, Rules: Rules{Shops: []string{"a.example.com"}}}
		}, "percent: 10 given for a whitelist stage"},
		{"bad sticky", func(s *Spec) { s.Stage = Stage{Kind: Percent, Percent: 10, Sticky: "cookie"} }, `sticky: "cookie"`},
		{"rules on full", func(s *Spec) { s.Stage = Stage{Kind: Full, Rules: Rules{Shops: []string{"a.example.com"}}} }, "rules given for a full stage"},
		{"bad CIDR", func(s *Spec) { s.Stage = wl(Rules{Clients: []string{"10.0.0.0/33"}}) }, `whitelist clients[0]: client "10.0.0.0/33": not a CIDR`},
		{"CIDR host bits", func(s *Spec) { s.Stage = wl(Rules{Clients: []string{"10.1.2.3/8"}}) }, "did you mean 10.0.0.0/8?"},
		{"not an IP", func(s *Spec) { s.Stage = wl(Rules{Clients: []string{"localhost"}}) }, `client "localhost": not an IP address or CIDR`},
		{"shop with space", func(s *Spec) { s.Stage = wl(Rules{Shops: []string{"a b.com"}}) }, `whitelist shops[0]: shop "a b.com"`},
		{"shop injection", func(s *Spec) { s.Stage = wl(Rules{Shops: []string{`a.com" 1; } server { listen 81; #`}}) }, "whitelist shops[0]"},
		{"shop semicolon", func(s *Spec) { s.Stage = wl(Rules{Shops: []string{"a.com;"}}) }, "whitelist shops[0]"},
		{"shop variable", func(s *Spec) { s.Stage = wl(Rules{Shops: []string{"$host"}}) }, "whitelist shops[0]"},
		{"shop regex", func(s *Spec) { s.Stage = wl(Rules{Shops: []string{"~.*"}}) }, "whitelist shops[0]"},
		{"shop empty", func(s *Spec) { s.Stage = wl(Rules{Shops: []string{""}}) }, "empty shop domain"},
		{"shop label hyphen", func(s *Spec) { s.Stage = wl(Rules{Shops: []string{"-a.com"}}) }, `"-a" is not a DNS label`},
		{"shop too long label", func(s *Spec) { s.Stage = wl(Rules{Shops: []string{strings.Repeat("a", 64) + ".com"}}) }, "is not a DNS label"},
		{"header name underscore", func(s *Spec) { s.Stage = wl(Rules{Headers: []Match{{"X_Beta", "1"}}}) }, `headers[0]: name "X_Beta"`},
		{"header value quote", func(s *Spec) { s.Stage = wl(Rules{Headers: []Match{{"X-Beta", `1";return 200;#`}}}) }, "headers[0] (X-Beta): value: character"},
		{"header value dollar", func(s *Spec) { s.Stage = wl(Rules{Headers: []Match{{"X-Beta", "$host"}}}) }, "value: character '$'"},
		{"header value brace", func(s *Spec) { s.Stage = wl(Rules{Headers: []Match{{"X-Beta", "a}"}}}) }, "value: character '}'"},
		{"header value backslash", func(s *Spec) { s.Stage = wl(Rules{Headers: []Match{{"X-Beta", `a\`}}}) }, `value: character '\\'`},
		{"header value newline", func(s *Spec) { s.Stage = wl(Rules{Headers: []Match{{"X-Beta", "a\nb"}}}) }, "value: character '\\n'"},
		{"header value empty", func(s *Spec) { s.Stage = wl(Rules{Headers: []Match{{"X-Beta", ""}}}) }, "value: empty"},
		{"cookie name dash", func(s *Spec) { s.Stage = wl(Rules{Cookies: []Match{{"be-ta", "1"}}}) }, `cookies[0]: name "be-ta"`},
		{"cookie value space", func(s *Spec) { s.Stage = wl(Rules{Cookies: []Match{{"beta", "a b"}}}) }, "cookies[0] (beta): value"},
		{"shop param dash", func(s *Spec) { s.Keys.Param = "shop-domain" }, `shop parameter: "shop-domain"`},
		{"shop header underscore", func(s *Spec) { s.Keys.Header = "X_Shop" }, `shop header: "X_Shop"`},
		{"shop cookie injection", func(s *Spec) { s.Keys.Cookie = "shop;x" }, `shop cookie: "shop;x"`},
		{"sticky on whitelist", func(s *Spec) {
			s.Stage = Stage{Kind: Whitelist, Sticky: ByShop, Rules: Rules{Shops: []string{"a.example.com"}}}
		}, `sticky: "shop" given for a whitelist stage`},
		{"too many matches", func(s *Spec) {
			var ms []Match
			for i := 0; i <= MaxMatches; i++ {
				ms = append(ms, Match{"X-A", "v"})
			}
			s.Stage = wl(Rules{Headers: ms})
		}, "whitelist headers and cookies: 101, at most 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSpec(Stage{Kind: Stable})
			tt.mod(&s)
			f, err := Render(s)
			if err == nil {
				t.Fatalf("no error; rendered:\n%s%s", f.HTTP, f.Routing)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
			if f.HTTP != nil || f.Routing != nil {
				t.Errorf("rendered output despite the error")
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	s := baseSpec(Stage{Kind: Percent, Percent: 200})
	s.App = ""
	s.StableAddrs = nil
	err := s.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"app:", "stable addresses: empty", "percent: 200"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestNormalizeClient(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":        "127.0.0.1/32",
		"::ffff:127.0.0.1": "127.0.0.1/32",
		"10.0.0.0/8":       "10.0.0.0/8",
		"2001:db8::1":      "2001:db8::1/128",
	} {
		p, err := NormalizeClient(in)
		if err != nil || p.String() != want {
			t.Errorf("NormalizeClient(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

func TestSpecFor(t *testing.T) {
	inv := &inventory.Inventory{
		Hosts: []inventory.Host{
			{Name: "shop-1", PrivateAddress: "10.213.0.11", Roles: []inventory.Role{inventory.RoleApp}, App: "shop"},
			{Name: "shop-2", PrivateAddress: "10.213.0.12", Roles: []inventory.Role{inventory.RoleApp}, App: "shop"},
			{Name: "db-1", PrivateAddress: "10.213.0.21", Roles: []inventory.Role{inventory.RoleDB}},
		},
		Apps: []inventory.App{{Name: "shop", Port: 8080, Hosts: []string{"shop-1", "shop-2"}}},
	}
	s, err := SpecFor(inv, "shop", []string{"shop-2"}, Keys{}, Stage{Kind: Percent, Percent: 10})
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != 8080 || strings.Join(s.StableAddrs, ",") != "10.213.0.11,10.213.0.12" || strings.Join(s.CanaryAddrs, ",") != "10.213.0.12" {
		t.Errorf("spec = %+v", s)
	}
	if _, err := Render(s); err != nil {
		t.Errorf("render: %v", err)
	}
	if _, err := SpecFor(inv, "blog", nil, Keys{}, Stage{Kind: Stable}); err == nil || !strings.Contains(err.Error(), `app "blog" is not in the inventory`) {
		t.Errorf("unknown app: %v", err)
	}
	if _, err := SpecFor(inv, "shop", []string{"db-1"}, Keys{}, Stage{Kind: Full}); err == nil || !strings.Contains(err.Error(), `canary host "db-1" is not an app server of shop`) {
		t.Errorf("foreign canary host: %v", err)
	}
}

// TestRoutingHeaderNamesStage pins the first line of routing.conf: `belay deploy
// status` reads the live stage from it on each host (deploy/state.go).
func TestRoutingHeaderNamesStage(t *testing.T) {
	re := regexp.MustCompile(`^# Managed by belay deploy.*stage (.*)\.$`)
	for _, st := range []Stage{
		{Kind: Stable}, {Kind: Full},
		{Kind: Whitelist, Rules: Rules{Shops: []string{"a.example.com"}}},
		{Kind: Percent, Percent: 25}, {Kind: Percent, Percent: 5, Sticky: ByShop},
	} {
		f, err := Render(baseSpec(st))
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(f.Routing), "\n")
		m := re.FindStringSubmatch(first)
		if m == nil || m[1] != st.String() {
			t.Errorf("routing.conf header %q does not name stage %q", first, st)
		}
	}
	if got := (Stage{Kind: Percent, Percent: 25}).String(); got != "percent 25 (sticky ip)" {
		t.Errorf("Stage.String() = %q", got)
	}
}
