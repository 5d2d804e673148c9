package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testConfig is shaped like a binary's config: shared parts plus its own.
type testConfig struct {
	Server  Server       `yaml:"server"`
	Log     Log          `yaml:"log"`
	Tracing Tracing      `yaml:"tracing"`
	Store   *storeConfig `yaml:"store"`
	Tags    []string     `yaml:"tags" env:"T_TAGS"`
	Workers int          `yaml:"workers" env:"T_WORKERS"`
	Burst   uint32       `yaml:"burst" env:"T_BURST"`
}

type storeConfig struct {
	URL     string        `yaml:"url" env:"T_REDIS_URL"`
	Timeout time.Duration `yaml:"timeout" env:"T_REDIS_TIMEOUT"`
}

func (s storeConfig) Validate() error {
	if s.URL == "" {
		return errors.New("url: required when store is set")
	}
	return nil
}

func defaults() testConfig {
	return testConfig{
		Server:  DefaultServer(":8081", ":8080"),
		Log:     DefaultLog(),
		Tracing: DefaultTracing(),
		Workers: 4,
	}
}

// env is an injected environment.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayersDefaultsFileEnvironmentAndOverrides(t *testing.T) {
	tests := []struct {
		name     string
		file     string // "" loads no file
		env      []string
		override func(*testConfig)
		want     func(*testConfig) // applied to defaults()
	}{
		{
			name: "defaults alone",
			want: func(*testConfig) {},
		},
		{
			name: "an empty file keeps the defaults",
			file: "# nothing set\n",
			want: func(*testConfig) {},
		},
		{
			name: "the file overrides only the keys it sets",
			file: "server:\n  grpcAddr: 127.0.0.1:9001\n  tls:\n    certFile: c.pem\n    keyFile: k.pem\nlog:\n  level: debug\nworkers: 8\n",
			want: func(c *testConfig) {
				c.Server.GRPCAddr = "127.0.0.1:9001"
				c.Server.TLS = TLS{CertFile: "c.pem", KeyFile: "k.pem"}
				c.Log.Level = "debug"
				c.Workers = 8
			},
		},
		{
			name: "the environment overrides the file",
			file: "server:\n  grpcAddr: 127.0.0.1:9001\nworkers: 8\n",
			env: []string{
				"PORTCULLIS_GRPC_ADDR", ":7000",
				"PORTCULLIS_SHUTDOWN_GRACE", "3s",
				"PORTCULLIS_LOG_LEVEL", "warn",
				"PORTCULLIS_OTLP_ENDPOINT", "collector:4317",
				"PORTCULLIS_OTLP_INSECURE", "false",
				"PORTCULLIS_TRACE_SAMPLE_RATIO", "0.25",
				"T_WORKERS", " 16 ",
				"T_BURST", "5",
				"T_TAGS", "a, b,,c ",
			},
			want: func(c *testConfig) {
				c.Server.GRPCAddr = ":7000"
				c.Server.ShutdownGrace = 3 * time.Second
				c.Log.Level = "warn"
				c.Tracing = Tracing{Endpoint: "collector:4317", SampleRatio: 0.25}
				c.Workers = 16
				c.Burst = 5
				c.Tags = []string{"a", "b", "c"}
			},
		},
		{
			name: "an environment variable inside an absent optional part creates it",
			env:  []string{"T_REDIS_URL", "redis://r:6379"},
			want: func(c *testConfig) { c.Store = &storeConfig{URL: "redis://r:6379"} },
		},
		{
			name: "an absent optional part stays absent when none of its variables is set",
			env:  []string{"UNRELATED", "x"},
			want: func(*testConfig) {},
		},
		{
			name:     "overrides (command-line flags) win over the environment",
			env:      []string{"PORTCULLIS_HTTP_ADDR", ":7001"},
			override: func(c *testConfig) { c.Server.HTTPAddr = ":7002" },
			want:     func(c *testConfig) { c.Server.HTTPAddr = ":7002" },
		},
		{
			name: "an empty list variable clears the list",
			file: "tags: [x, y]\n",
			env:  []string{"T_TAGS", ""},
			want: func(c *testConfig) { c.Tags = []string{} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Source[testConfig]{Lookup: env(tt.env...), Defaults: defaults, Override: tt.override}
			if tt.file != "" {
				src.File = writeConfig(t, tt.file)
			}
			got, err := src.Load()
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := defaults()
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadErrorsSayWhereTheProblemIs(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  []string
		want []string // substrings of the error; "FILE" stands for the path
	}{
		{
			name: "an unknown field names file and line",
			file: "server:\n  grpcAddr: :9000\n  grpcadr: :9001\n",
			want: []string{"FILE:3: ", "field grpcadr not found"},
		},
		{
			name: "every unknown field is reported",
			file: "bogus: 1\nlog:\n  colour: red\n",
			want: []string{"FILE:1: field bogus not found", "FILE:3: field colour not found"},
		},
		{
			name: "a syntax error names file and line",
			file: "server:\n  grpcAddr: :9000\n tls: {\n",
			want: []string{"FILE:2: did not find expected key"},
		},
		{
			name: "a wrong type names file and line",
			file: "workers: 2\nserver:\n  shutdownGrace: soon\n",
			want: []string{"FILE:3: ", "soon", "time.Duration"},
		},
		{
			name: "a bare number is not a duration",
			file: "server:\n  shutdownGrace: 10\n",
			want: []string{"FILE:2: "},
		},
		{
			name: "a bad log level names the field",
			file: "log:\n  level: loud\n",
			want: []string{"log: level: want debug, info, warn or error, got \"loud\""},
		},
		{
			name: "a second YAML document is refused with its line",
			file: "workers: 1\n---\nworkers: 2\n",
			want: []string{"FILE:2: ", "one YAML document"},
		},
		{
			name: "a bad environment value names the variable, not the value",
			env:  []string{"PORTCULLIS_SHUTDOWN_GRACE", "s3cr3t", "T_WORKERS", "many"},
			want: []string{"PORTCULLIS_SHUTDOWN_GRACE (field ShutdownGrace): want a duration", "T_WORKERS (field Workers): want an integer"},
		},
		{
			name: "validation names the path of the part and the field",
			file: "server:\n  tls:\n    certFile: c.pem\n",
			want: []string{"invalid config", "server.tls: certFile and keyFile must be set together"},
		},
		{
			name: "every validation error is reported",
			file: "server:\n  grpcAddr: nope\n  httpAddr: ':99999'\nlog:\n  format: xml\ntracing:\n  sampleRatio: 2\nstore:\n  timeout: 1s\n",
			want: []string{
				"server: grpcAddr: want HOST:PORT",
				"server: httpAddr: port \"99999\"",
				"log: format: want \"json\" or \"text\", got \"xml\"",
				"tracing: sampleRatio: want a number from 0 to 1, got 2",
				"store: url: required",
			},
		},
		{
			name: "a missing file is an error",
			file: "\x00missing",
			want: []string{"read config", "no such file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Source[testConfig]{Lookup: env(tt.env...), Defaults: defaults}
			switch {
			case tt.file == "\x00missing":
				src.File = filepath.Join(t.TempDir(), "absent.yaml")
			case tt.file != "":
				src.File = writeConfig(t, tt.file)
			}
			_, err := src.Load()
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "FILE", src.File)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q repeats the environment value", err)
			}
		})
	}
}

func TestFileErrorCarriesTheLine(t *testing.T) {
	src := Source[testConfig]{File: writeConfig(t, "workers: 1\nnope: 2\n"), Defaults: defaults}
	_, err := src.Load()
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FileError", err)
	}
	if fe.File != src.File || fe.Line != 2 {
		t.Errorf("FileError at %s:%d, want %s:2", fe.File, fe.Line, src.File)
	}
}

func TestDefaultsAreFreshOnEveryLoad(t *testing.T) {
	type withMap struct {
		Limits map[string]int `yaml:"limits"`
	}
	src := Source[withMap]{
		File:     writeConfig(t, "limits:\n  b: 2\n"),
		Defaults: func() withMap { return withMap{Limits: map[string]int{"a": 1}} },
	}
	for range 2 {
		got, err := src.Load()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]int{"a": 1, "b": 2}, got.Limits); diff != "" {
			t.Errorf("limits (-want +got):\n%s", diff)
		}
	}
}

func TestEnvironmentTagOnAnUnsupportedTypeIsAnError(t *testing.T) {
	type bad struct {
		M map[string]string `env:"T_MAP"`
	}
	_, err := Source[bad]{Lookup: env("T_MAP", "a=b")}.Load()
	if err == nil || !strings.Contains(err.Error(), "unsupported field type") {
		t.Fatalf("Load = %v, want an unsupported field type error", err)
	}
}
