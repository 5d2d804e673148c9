package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/pkg/apikey"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

var keyLine = regexp.MustCompile(`(?m)^    (pcl_(live|test)_\S+)$`)

// output splits what run printed into the key and the catalog entry.
func output(t *testing.T, stdout string) (key string, entry []byte) {
	t.Helper()
	m := keyLine.FindAllStringSubmatch(stdout, -1)
	if len(m) != 1 {
		t.Fatalf("want the key printed once, found %d in:\n%s", len(m), stdout)
	}
	key = m[0][1]
	if n := strings.Count(stdout, key); n != 1 {
		t.Fatalf("the key appears %d times", n)
	}
	_, rest, ok := strings.Cut(stdout, entryMarker)
	if !ok {
		t.Fatalf("no catalog entry in:\n%s", stdout)
	}
	_, yamlText, _ := strings.Cut(rest, "\n")
	return key, []byte(yamlText)
}

func TestRunPrintsAKeyAndAnEntryTheCatalogAccepts(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want catalog.CompiledAPIKey // ID, KeyType, Expires, AllowedIPs, AllowedReferrers
		env  string
	}{
		{
			name: "defaults",
			args: []string{"-app", "mobile-app", "-id", "mobile-key-2"},
			want: catalog.CompiledAPIKey{ID: "mobile-key-2", KeyType: catalog.KeyTypeProduction},
			env:  "live",
		},
		{
			name: "sandbox key is a test key",
			args: []string{"-app", "mobile-app", "-id", "sb", "-type", "SANDBOX"},
			want: catalog.CompiledAPIKey{ID: "sb", KeyType: catalog.KeyTypeSandbox},
			env:  "test",
		},
		{
			name: "every restriction",
			args: []string{"-app", "partner", "-id", "k1", "-expires", "2099-06-30T00:00:00Z",
				"-cidr", "203.0.113.0/24, 2001:db8::/32,198.51.100.7", "-referrer", "https://app.example.com/*,https://b.example.com/", "-env", "test"},
			want: catalog.CompiledAPIKey{
				ID: "k1", KeyType: catalog.KeyTypeProduction,
				Expires:          time.Date(2099, 6, 30, 0, 0, 0, 0, time.UTC),
				AllowedIPs:       []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.7/32")},
				AllowedReferrers: []string{"https://app.example.com/*", "https://b.example.com/"},
			},
			env: "test",
		},
		{
			name: "name needing quotes",
			args: []string{"-app", "app-1", "-id", "key: with colon"},
			want: catalog.CompiledAPIKey{ID: "key: with colon", KeyType: catalog.KeyTypeProduction},
			env:  "live",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), tt.args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			key, entry := output(t, stdout.String())
			if strings.Contains(stderr.String(), key) {
				t.Error("the key went to stderr")
			}
			if !strings.HasPrefix(key, "pcl_"+tt.env+"_") {
				t.Errorf("key %s is not a %s key", key[:9], tt.env)
			}
			if err := apikey.CheckFormat(key); err != nil {
				t.Errorf("CheckFormat: %v", err)
			}
			if !strings.Contains(stdout.String(), "only time the key is shown") {
				t.Error("no warning that the key is not stored")
			}

			app := tt.args[1]
			doc, err := applicationDocument(app, entry)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := catalog.Decode("entry.yaml", doc)
			if err != nil {
				t.Fatalf("the printed entry does not decode: %v\n%s", err, doc)
			}
			snap, err := catalog.Build(docs)
			if err != nil {
				t.Fatalf("the printed entry does not build: %v\n%s", err, doc)
			}
			gotApp, got, ok := snap.ApplicationByKeyHash(apikey.Hash(key))
			if !ok {
				t.Fatalf("no key with the printed key's hash in:\n%s", entry)
			}
			if gotApp.Name != app {
				t.Errorf("application %q, want %q", gotApp.Name, app)
			}
			if strings.Contains(string(entry), key) || strings.Contains(string(entry), key[9:]) {
				t.Error("the catalog entry holds the key")
			}
			diff := cmp.Diff(tt.want, *got,
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
				cmp.FilterPath(func(p cmp.Path) bool {
					f := p.Last().String()
					return f == ".Application" || f == ".Hash"
				}, cmp.Ignore()))
			if diff != "" {
				t.Errorf("key entry (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no application", []string{"-id", "k"}, "-app is required"},
		{"no id", []string{"-app", "a"}, "-id is required"},
		{"unknown type", []string{"-app", "a", "-id", "k", "-type", "GOLD"}, `unknown key type "GOLD"`},
		{"unknown environment", []string{"-app", "a", "-id", "k", "-env", "prod"}, `unknown environment "prod"`},
		{"bad expiry", []string{"-app", "a", "-id", "k", "-expires", "tomorrow"}, "want an RFC 3339 time"},
		{"past expiry", []string{"-app", "a", "-id", "k", "-expires", "2020-01-01T00:00:00Z"}, "is not in the future"},
		{"bad CIDR", []string{"-app", "a", "-id", "k", "-cidr", "10.0.0.0/8,nonsense"}, "allowedCIDRs[1]"},
		{"empty CIDR", []string{"-app", "a", "-id", "k", "-cidr", "10.0.0.0/8,,"}, "allowedCIDRs[1]"},
		{"empty referrer", []string{"-app", "a", "-id", "k", "-referrer", "https://a/*, "}, "empty referrer pattern"},
		{"bad application name", []string{"-app", "Not A Name!", "-id", "k"}, "metadata.name"},
		{"stray argument", []string{"-app", "a", "-id", "k", "extra"}, "unexpected arguments"},
		{"unknown flag", []string{"-app", "a", "-id", "k", "-force"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("a refused run printed:\n%s", stdout.String())
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "usage: apikey -app NAME -id KEYID") {
		t.Errorf("no usage in:\n%s", stderr.String())
	}
	if stdout.Len() > 0 {
		t.Error("help printed to stdout")
	}
}

func TestRunStopsOnACancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"-app", "a", "-id", "k"}, &stdout, &stderr); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if stdout.Len() > 0 {
		t.Error("a cancelled run printed a key")
	}
}

func TestRunFailsWhenOutputCannotBeWritten(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-app", "a", "-id", "k"}, failingWriter{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "write output") {
		t.Fatalf("err = %v, want a write error", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
