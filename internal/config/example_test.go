package config_test

import (
	"fmt"

	"github.com/portcullis-dev/portcullis/internal/config"
)

// A binary's config composes the shared parts with its own.
type ratelimitConfig struct {
	Server  config.Server  `yaml:"server"`
	Log     config.Log     `yaml:"log"`
	Tracing config.Tracing `yaml:"tracing"`
	Redis   string         `yaml:"redis" env:"PORTCULLIS_REDIS_URL"`
}

func defaultRatelimitConfig() ratelimitConfig {
	return ratelimitConfig{
		Server:  config.DefaultServer(":8081", ":8080"),
		Log:     config.DefaultLog(),
		Tracing: config.DefaultTracing(),
	}
}

func ExampleSource_Load() {
	// In main: File from -config, Lookup os.LookupEnv, Override the flags
	// the operator set (found with flag.Visit).
	environment := map[string]string{"PORTCULLIS_LOG_LEVEL": "debug", "PORTCULLIS_REDIS_URL": "redis://redis:6379"}
	src := config.Source[ratelimitConfig]{
		Lookup:   func(k string) (string, bool) { v, ok := environment[k]; return v, ok },
		Defaults: defaultRatelimitConfig,
		Override: func(c *ratelimitConfig) { c.Server.GRPCAddr = ":9081" }, // -grpc-addr :9081
	}
	cfg, err := src.Load()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Server.GRPCAddr, cfg.Server.HTTPAddr, cfg.Log.Level, cfg.Redis)
	// Output: :9081 :8080 debug redis://redis:6379
}
