package shopkeys

import "testing"

func TestWithDefaults(t *testing.T) {
	for _, tc := range []struct{ in, want Keys }{
		{Keys{}, Keys{Param: "shop", Header: "X-Shop-Domain", Cookie: "shop"}},
		{Keys{Header: "X-Shop"}, Keys{Param: "shop", Header: "X-Shop", Cookie: "shop"}},
		{Keys{Param: "s", Header: "H", Cookie: "c"}, Keys{Param: "s", Header: "H", Cookie: "c"}},
	} {
		if got := tc.in.WithDefaults(); got != tc.want {
			t.Errorf("%+v.WithDefaults() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
