package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/pkg/quota/redisstore"
	"github.com/portcullis-dev/portcullis/pkg/rls"
)

// Config is everything ratelimit reads: defaults, then -config's YAML, then
// PORTCULLIS_* environment variables, then the flags the operator set.
type Config struct {
	Server  config.Server  `yaml:"server"`
	Log     config.Log     `yaml:"log"`
	Tracing config.Tracing `yaml:"tracing"`

	// Rules is a directory of envoyproxy/ratelimit rule files; empty loads none.
	Rules string `yaml:"rules" env:"PORTCULLIS_RULES"`
	// Catalog is a catalog file or directory whose Policy documents serve
	// domain "portcullis"; empty loads none.
	Catalog string `yaml:"catalog" env:"PORTCULLIS_CATALOG"`

	Limiter Limiter `yaml:"limiter"`
	Redis   Redis   `yaml:"redis"`
	Memory  Memory  `yaml:"memory"`
}

// Limiter is how requests are answered.
type Limiter struct {
	// Timeout bounds one request's store step; keep it under the Envoy
	// filter's timeout (20ms by default) so the failure mode answers first.
	Timeout time.Duration `yaml:"timeout" env:"PORTCULLIS_LIMITER_TIMEOUT"`
	// FailureMode is open, closed or unavailable.
	FailureMode string `yaml:"failureMode" env:"PORTCULLIS_LIMITER_FAILURE_MODE"`
	// Shadow counts and reports but never denies, for every rule.
	Shadow         bool    `yaml:"shadow" env:"PORTCULLIS_LIMITER_SHADOW"`
	NearLimitRatio float64 `yaml:"nearLimitRatio" env:"PORTCULLIS_LIMITER_NEAR_LIMIT_RATIO"`
}

// Validate checks the limiter part.
func (l Limiter) Validate() error {
	var errs []error
	if l.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive, got %v", l.Timeout))
	}
	if _, err := rls.ParseFailureMode(l.FailureMode); err != nil {
		errs = append(errs, fmt.Errorf("failureMode: %w", err))
	}
	if l.NearLimitRatio <= 0 || l.NearLimitRatio >= 1 {
		errs = append(errs, fmt.Errorf("nearLimitRatio: must be between 0 and 1, got %v", l.NearLimitRatio))
	}
	return errors.Join(errs...)
}

// Redis selects the Redis store; an empty URL keeps the memory store.
type Redis struct {
	// URL is redis://, rediss://, redis+sentinel:// or redis+cluster://
	// (see the README). It may hold a password: it is never logged.
	URL        string `yaml:"url" env:"PORTCULLIS_REDIS_URL"`
	Prefix     string `yaml:"prefix" env:"PORTCULLIS_REDIS_PREFIX"`
	LocalCache bool   `yaml:"localCache" env:"PORTCULLIS_REDIS_LOCAL_CACHE"`
}

// Validate parses the URL so that a typo stops start-up with a reason.
func (r Redis) Validate() error {
	if r.URL == "" {
		return nil
	}
	if _, err := redisstore.ParseURL(r.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	return nil
}

// Memory tunes the embedded store.
type Memory struct {
	MaxKeys int `yaml:"maxKeys" env:"PORTCULLIS_MEMORY_MAX_KEYS"`
}

// Validate checks the memory part.
func (m Memory) Validate() error {
	if m.MaxKeys < 0 {
		return fmt.Errorf("maxKeys: must not be negative, got %d", m.MaxKeys)
	}
	return nil
}

func defaults() Config {
	return Config{
		Server:  config.DefaultServer(":8081", ":8080"),
		Log:     config.DefaultLog(),
		Tracing: config.DefaultTracing(),
		Limiter: Limiter{Timeout: 15 * time.Millisecond, FailureMode: "open", NearLimitRatio: 0.8},
		Redis:   Redis{Prefix: "portcullis:", LocalCache: true},
	}
}
