package appenv

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const seed = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func saved(t *testing.T) (string, *Env) {
	t.Helper()
	p, err := Path(t.TempDir(), "prod", "shop")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Load(p, seed, "prod", "shop")
	if err != nil {
		t.Fatal(err)
	}
	as, err := ParseAssignments([]string{"LOG_LEVEL=debug", "STRIPE_KEY=sk_live_x=y z"})
	if err != nil {
		t.Fatal(err)
	}
	e.Set(as[:1], false)
	e.Set(as[1:], true)
	if err := Save(p, e, seed); err != nil {
		t.Fatal(err)
	}
	return p, e
}

func TestRoundTrip(t *testing.T) {
	p, _ := saved(t)
	e, err := Load(p, seed, "prod", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if e.Serial != 2 || e.Vars["LOG_LEVEL"].Value != "debug" || e.Vars["STRIPE_KEY"].Value != "sk_live_x=y z" || !e.Vars["STRIPE_KEY"].Secret || e.Vars["LOG_LEVEL"].Secret {
		t.Fatalf("round trip: %+v", e)
	}
	raw, _ := os.ReadFile(p)
	if strings.Contains(string(raw), "sk_live") || strings.Contains(string(raw), "debug") {
		t.Fatalf("a value is stored in the clear:\n%s", raw)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	want := "# belay env of shop (stack prod, serial 2)\nLOG_LEVEL=debug\nSTRIPE_KEY=sk_live_x=y z\n"
	if got := string(e.Render()); got != want {
		t.Fatalf("render:\n%s\nwant:\n%s", got, want)
	}
}

func TestMissingFileIsEmpty(t *testing.T) {
	e, err := Load(filepath.Join(t.TempDir(), "none.json"), "", "prod", "shop")
	if err != nil || len(e.Vars) != 0 || e.Serial != 0 {
		t.Fatalf("missing file: %+v %v", e, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	p, _ := saved(t)
	edit := func(fn func(f *File)) func(t *testing.T) string {
		return func(t *testing.T) string {
			raw, _ := os.ReadFile(p)
			var f File
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatal(err)
			}
			fn(&f)
			b, _ := json.Marshal(f)
			q := filepath.Join(t.TempDir(), "shop.json")
			if err := os.WriteFile(q, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return q
		}
	}
	flip := func(s string) string {
		b := []byte(s)
		b[len(b)/2] ^= 'A' ^ 'B'
		return string(b)
	}
	for _, tc := range []struct {
		name, seed, stack, app, want string
		file                         func(t *testing.T) string
	}{
		{"wrong seed", strings.Repeat("f", 64), "prod", "shop", "wrong belay:hostKeySeed", edit(func(*File) {})},
		{"short seed", "short", "prod", "shop", "expected the stack's belay:hostKeySeed", edit(func(*File) {})},
		{"other app", seed, "prod", "blog", `holds the env of stack "prod" app "shop"`, edit(func(*File) {})},
		{"ciphertext flipped", seed, "prod", "shop", "wrong belay:hostKeySeed", edit(func(f *File) {
			v := f.Vars["LOG_LEVEL"]
			v.Sealed = flip(v.Sealed)
			f.Vars["LOG_LEVEL"] = v
		})},
		{"secret flag cleared", seed, "prod", "shop", "wrong belay:hostKeySeed", edit(func(f *File) {
			v := f.Vars["STRIPE_KEY"]
			v.Secret = false
			f.Vars["STRIPE_KEY"] = v
		})},
		{"value moved to another key", seed, "prod", "shop", "wrong belay:hostKeySeed", edit(func(f *File) {
			f.Vars["OTHER"] = f.Vars["STRIPE_KEY"]
			delete(f.Vars, "STRIPE_KEY")
		})},
		{"entry removed", seed, "prod", "shop", "wrong belay:hostKeySeed", edit(func(f *File) { delete(f.Vars, "LOG_LEVEL") })},
		{"serial rewound", seed, "prod", "shop", "wrong belay:hostKeySeed", edit(func(f *File) { f.Serial = 1 })},
		{"reserved key smuggled in", seed, "prod", "shop", "wrong belay:hostKeySeed", edit(func(f *File) { f.Vars["DATABASE_URL"] = f.Vars["LOG_LEVEL"] })},
		{"not json", seed, "prod", "shop", "not a belay env file", func(t *testing.T) string {
			q := filepath.Join(t.TempDir(), "x.json")
			_ = os.WriteFile(q, []byte("LOG_LEVEL=debug"), 0o600)
			return q
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.file(t), tc.seed, tc.stack, tc.app)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.Contains(tc.want, "hostKeySeed\"") && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("not ErrWrongKey: %v", err)
			}
		})
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lower=x"}, `key "lower"`},
		{[]string{"OK=1", "1ABC=x"}, `key "1ABC"`},
		{[]string{"BELAY_RELEASE=x"}, "BELAY_* is reserved"},
		{[]string{"DATABASE_URL=postgres://x"}, "DATABASE_URL"},
		{[]string{"PORT=1"}, "PORT"},
		{[]string{"A=x\ny"}, "key A: the value has a newline"},
		{[]string{"NOEQUALS"}, "expected KEY=VALUE"},
		{[]string{"SECRETISH"}, `"SECRETISH"`},
		{[]string{"A=1", "A=2"}, "key A: given twice"},
		{[]string{"A=" + strings.Repeat("x", MaxValueLen+1)}, "at most"},
	} {
		_, err := ParseAssignments(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.want)
		}
	}
	// An error never echoes a value.
	if _, err := ParseAssignments([]string{"bad=hunter2"}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error echoes the value: %v", err)
	}
	_, e := saved(t)
	if err := e.Unset([]string{"LOG_LEVEL", "NOPE"}); err == nil || !strings.Contains(err.Error(), "key NOPE: not set") {
		t.Fatalf("unset: %v", err)
	}
	if _, ok := e.Vars["LOG_LEVEL"]; !ok || e.Serial != 2 {
		t.Fatalf("a failed unset changed the env: %+v", e)
	}
}

func TestSetSerial(t *testing.T) {
	e := &Env{Stack: "s", App: "a", Vars: map[string]Entry{}}
	as := []Assignment{{"A", "1"}}
	if !e.Set(as, false) || e.Serial != 1 {
		t.Fatal("first set")
	}
	if e.Set(as, false) || e.Serial != 1 {
		t.Fatal("an unchanged set bumped the serial")
	}
	if !e.Set(as, true) || e.Serial != 2 {
		t.Fatal("marking secret is a change")
	}
}
