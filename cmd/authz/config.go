package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/extauthz"
)

// Config is everything authz reads: defaults, then -config's YAML, then
// PORTCULLIS_* environment variables, then the flags the operator set.
type Config struct {
	Server  config.Server  `yaml:"server"`
	Log     config.Log     `yaml:"log"`
	Tracing config.Tracing `yaml:"tracing"`

	// Catalog is a catalog file or directory; empty serves an empty
	// catalog, in which every request is unmanaged.
	Catalog string `yaml:"catalog" env:"PORTCULLIS_CATALOG"`
	// Analytics is where usage events are exported besides the usage
	// metrics, which are always on: off, jsonl:FILE, jsonl:- (stdout),
	// otlp-grpc:HOST:PORT or otlp-http:URL.
	Analytics string `yaml:"analytics" env:"PORTCULLIS_ANALYTICS"`
	// AnalyticsDecisions makes authz emit one event per decision itself,
	// for deployments that do not stream Envoy's access log to it. Off by
	// default: with the access log wired as well, every request would be
	// counted twice.
	AnalyticsDecisions bool `yaml:"analyticsDecisions" env:"PORTCULLIS_ANALYTICS_DECISIONS"`

	Authz Authz    `yaml:"authz"`
	IdP   IdP      `yaml:"idp"`
	HTTP  HTTPMode `yaml:"http"`
}

// Validate checks what spans parts: the analytics sink.
func (c Config) Validate() error {
	// ParseSink's errors name the flag and the value already.
	_, err := analytics.ParseSink(c.Analytics)
	return err
}

// Authz is how decisions are made.
type Authz struct {
	// Realm is the WWW-Authenticate realm of 401 refusals.
	Realm string `yaml:"realm" env:"PORTCULLIS_AUTHZ_REALM"`
	// TrustedHops is how many proxies in front of Envoy append to
	// x-forwarded-for (Envoy's xff_num_trusted_hops, Istio's
	// numTrustedProxies). 0 never reads x-forwarded-for.
	TrustedHops int `yaml:"trustedHops" env:"PORTCULLIS_AUTHZ_TRUSTED_HOPS"`
	// AllowUnmanaged lets requests no API serves through instead of 404.
	AllowUnmanaged bool `yaml:"allowUnmanaged" env:"PORTCULLIS_AUTHZ_ALLOW_UNMANAGED"`
	// IdPUnavailable is grpc-unavailable (Envoy's failure mode decides) or
	// deny-503.
	IdPUnavailable  string          `yaml:"idpUnavailable" env:"PORTCULLIS_AUTHZ_IDP_UNAVAILABLE"`
	IdentityHeaders IdentityHeaders `yaml:"identityHeaders"`
}

// Validate checks the authz part.
func (a Authz) Validate() error {
	var errs []error
	if a.Realm == "" {
		errs = append(errs, errors.New("realm: required"))
	}
	if a.TrustedHops < 0 {
		errs = append(errs, fmt.Errorf("trustedHops: must not be negative, got %d", a.TrustedHops))
	}
	if _, err := extauthz.ParseUnavailableMode(a.IdPUnavailable); err != nil || a.IdPUnavailable == "" {
		errs = append(errs, fmt.Errorf("idpUnavailable: want grpc-unavailable or deny-503, got %q", a.IdPUnavailable))
	}
	return errors.Join(errs...)
}

// IdentityHeaders name the headers the upstream receives.
type IdentityHeaders struct {
	Application string `yaml:"application" env:"PORTCULLIS_AUTHZ_HEADER_APPLICATION"`
	Owner       string `yaml:"owner" env:"PORTCULLIS_AUTHZ_HEADER_OWNER"`
	User        string `yaml:"user" env:"PORTCULLIS_AUTHZ_HEADER_USER"`
	KeyType     string `yaml:"keyType" env:"PORTCULLIS_AUTHZ_HEADER_KEY_TYPE"`
}

func (h IdentityHeaders) authz() authz.IdentityHeaders {
	return authz.IdentityHeaders{Application: h.Application, Owner: h.Owner, User: h.User, KeyType: h.KeyType}
}

// Validate checks the names are distinct, usable header names.
func (h IdentityHeaders) Validate() error { return h.authz().Validate() }

// IdP bounds the calls to identity providers.
type IdP struct {
	// Timeout bounds one introspection call or key fetch. It must be
	// shorter than EnvoyTimeout, so that authz answers UNAVAILABLE (and
	// Envoy's failure mode applies) before Envoy gives up on the check.
	Timeout time.Duration `yaml:"timeout" env:"PORTCULLIS_IDP_TIMEOUT"`
	// EnvoyTimeout is the ext_authz timeout Envoy is configured with
	// (grpc_service.timeout; Istio's envoyExtAuthzGrpc.timeout). authz does
	// not enforce it; it is here so the relation is checked.
	EnvoyTimeout time.Duration `yaml:"envoyTimeout" env:"PORTCULLIS_IDP_ENVOY_TIMEOUT"`
	// CacheEntries bounds each provider's token cache; 0 is the cache's
	// default.
	CacheEntries int `yaml:"cacheEntries" env:"PORTCULLIS_IDP_CACHE_ENTRIES"`
}

// Validate checks the timeouts' relation.
func (i IdP) Validate() error {
	var errs []error
	if i.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive, got %v", i.Timeout))
	}
	if i.EnvoyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("envoyTimeout: must be positive, got %v", i.EnvoyTimeout))
	} else if i.Timeout >= i.EnvoyTimeout {
		errs = append(errs, fmt.Errorf("timeout: %v must be shorter than envoyTimeout %v, or Envoy gives up before authz can answer", i.Timeout, i.EnvoyTimeout))
	}
	if i.CacheEntries < 0 {
		errs = append(errs, fmt.Errorf("cacheEntries: must not be negative, got %d", i.CacheEntries))
	}
	return errors.Join(errs...)
}

// HTTPMode is the ext_authz HTTP protocol on the admin HTTP port.
type HTTPMode struct {
	// Prefix is where it is mounted: Envoy's path_prefix, nginx's
	// auth_request target.
	Prefix string `yaml:"prefix" env:"PORTCULLIS_HTTP_PREFIX"`
	// ClientAddressHeader names the header the proxy writes the client's
	// address in (X-Real-IP); empty: unknown in HTTP mode.
	ClientAddressHeader string `yaml:"clientAddressHeader" env:"PORTCULLIS_HTTP_CLIENT_ADDRESS_HEADER"`
}

// Validate checks the prefix.
func (h HTTPMode) Validate() error {
	if err := extauthz.ValidatePrefix(h.Prefix); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}

func defaults() Config {
	ih := authz.DefaultIdentityHeaders()
	return Config{
		Server:    config.DefaultServer(":9001", ":9000"),
		Log:       config.DefaultLog(),
		Tracing:   config.DefaultTracing(),
		Analytics: "off",
		Authz: Authz{
			Realm:          authz.DefaultRealm,
			IdPUnavailable: extauthz.UnavailableGRPC.String(),
			IdentityHeaders: IdentityHeaders{
				Application: ih.Application, Owner: ih.Owner, User: ih.User, KeyType: ih.KeyType,
			},
		},
		// Envoy's ext_authz default timeout is 200ms; a provider call
		// must end well inside it.
		IdP:  IdP{Timeout: 150 * time.Millisecond, EnvoyTimeout: 200 * time.Millisecond},
		HTTP: HTTPMode{Prefix: "/authz"},
	}
}
