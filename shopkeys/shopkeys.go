// Package shopkeys says where a request names its shop: a query parameter, a
// header and a cookie (config.Deploy's shopParam/shopHeader/shopCookie, with
// defaults). The canary whitelist (deploy/traffic) and the cell router
// (router) both read them; this small package sits below both so the router,
// and the roles that render its files, never import the deploy pipeline.
package shopkeys

// Keys says where a request names its shop (config.Deploy, with defaults).
type Keys struct {
	// Param is the query parameter (default "shop"). Empty fields take the defaults.
	Param string `json:"param,omitempty"`
	// Header is the request header (default "X-Shop-Domain").
	Header string `json:"header,omitempty"`
	// Cookie is the cookie name (default "shop").
	Cookie string `json:"cookie,omitempty"`
}

// Default shop keys, as documented in config.Deploy.
const (
	DefaultParam  = "shop"
	DefaultHeader = "X-Shop-Domain"
	DefaultCookie = "shop"
)

// WithDefaults fills the empty fields with the defaults documented in
// config.Deploy; callers pass Keys{Param: d.ShopParam, Header: d.ShopHeader, Cookie: d.ShopCookie}.
func (k Keys) WithDefaults() Keys {
	if k.Param == "" {
		k.Param = DefaultParam
	}
	if k.Header == "" {
		k.Header = DefaultHeader
	}
	if k.Cookie == "" {
		k.Cookie = DefaultCookie
	}
	return k
}
