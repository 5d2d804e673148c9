package redisstore

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		want    redis.UniversalOptions // TLSConfig compared through tls/serverName
		tls     bool
		sni     string
		wantErr string
	}{
		{name: "host and port", url: "redis://10.0.0.1:6380",
			want: redis.UniversalOptions{Addrs: []string{"10.0.0.1:6380"}}},
		{name: "default port", url: "redis://redis.svc",
			want: redis.UniversalOptions{Addrs: []string{"redis.svc:6379"}}},
		{name: "password and db", url: "redis://:s3cret@localhost:6379/2",
			want: redis.UniversalOptions{Addrs: []string{"localhost:6379"}, Password: "s3cret", DB: 2}},
		{name: "ACL user", url: "redis://ratelimit:pa%3Ass%40w%2Frd@localhost/0",
			want: redis.UniversalOptions{Addrs: []string{"localhost:6379"}, Username: "ratelimit", Password: "pa:ss@w/rd"}},
		{name: "unescaped @ in password", url: "redis://u:p@ss@h:1",
			want: redis.UniversalOptions{Addrs: []string{"h:1"}, Username: "u", Password: "p@ss"}},
		{name: "trailing slash", url: "redis://h/",
			want: redis.UniversalOptions{Addrs: []string{"h:6379"}}},
		{name: "IPv6", url: "redis://[::1]:7000",
			want: redis.UniversalOptions{Addrs: []string{"[::1]:7000"}}},
		{name: "IPv6 default port", url: "redis://[fe80::1]",
			want: redis.UniversalOptions{Addrs: []string{"[fe80::1]:6379"}}},
		{name: "TLS", url: "rediss://:pw@cache.example.com:6380", tls: true, sni: "cache.example.com",
			want: redis.UniversalOptions{Addrs: []string{"cache.example.com:6380"}, Password: "pw"}},
		{name: "TLS server name option", url: "rediss://10.1.1.1?tls_server_name=redis.internal", tls: true, sni: "redis.internal",
			want: redis.UniversalOptions{Addrs: []string{"10.1.1.1:6379"}}},
		{name: "options", url: "redis://h:1?dial_timeout=200ms&read_timeout=50ms&write_timeout=50ms&pool_timeout=1s&pool_size=64&min_idle_conns=8&max_retries=2&client_name=ratelimit",
			want: redis.UniversalOptions{Addrs: []string{"h:1"}, DialTimeout: 200 * time.Millisecond, ReadTimeout: 50 * time.Millisecond,
				WriteTimeout: 50 * time.Millisecond, PoolTimeout: time.Second, PoolSize: 64, MinIdleConns: 8, MaxRetries: 2, ClientName: "ratelimit"}},
		{name: "no retries", url: "redis://h?max_retries=0",
			want: redis.UniversalOptions{Addrs: []string{"h:6379"}, MaxRetries: -1}},
		{name: "sentinel", url: "redis+sentinel://:pw@s1:26380,s2,s3:5000/mymaster/3?sentinel_password=sp",
			want: redis.UniversalOptions{Addrs: []string{"s1:26380", "s2:26379", "s3:5000"}, MasterName: "mymaster", DB: 3,
				Password: "pw", SentinelPassword: "sp"}},
		{name: "sentinel TLS", url: "rediss+sentinel://s1/m", tls: true, sni: "s1",
			want: redis.UniversalOptions{Addrs: []string{"s1:26379"}, MasterName: "m"}},
		{name: "cluster", url: "redis+cluster://:pw@n1:7000,n2:7001",
			want: redis.UniversalOptions{Addrs: []string{"n1:7000", "n2:7001"}, Password: "pw", IsClusterMode: true}},
		{name: "cluster of one seed", url: "redis+cluster://n1",
			want: redis.UniversalOptions{Addrs: []string{"n1:6379"}, IsClusterMode: true}},
		{name: "scheme is case-insensitive", url: "REDIS://h",
			want: redis.UniversalOptions{Addrs: []string{"h:6379"}}},

		{name: "no scheme", url: "localhost:6379", wantErr: "missing scheme"},
		{name: "unknown scheme", url: "http://h", wantErr: `unknown scheme "http"`},
		{name: "no host", url: "redis://", wantErr: "no host"},
		{name: "no host after user info", url: "redis://:pw@/0", wantErr: "no host"},
		{name: "empty host in list", url: "redis+cluster://a,,b", wantErr: "empty host"},
		{name: "bad port", url: "redis://h:http", wantErr: `port "http"`},
		{name: "port out of range", url: "redis://h:70000", wantErr: `port "70000"`},
		{name: "port zero", url: "redis://h:0", wantErr: `port "0"`},
		{name: "empty port", url: "redis://h:", wantErr: `port ""`},
		{name: "bare IPv6", url: "redis://::1:6379", wantErr: "brackets"},
		{name: "IPv4 in brackets", url: "redis://[127.0.0.1]:1", wantErr: "not an IPv6 address"},
		{name: "unclosed bracket", url: "redis://[::1", wantErr: "missing ']'"},
		{name: "several hosts for one server", url: "redis://a,b", wantErr: "2 hosts given"},
		{name: "bad db", url: "redis://h/x", wantErr: `database "x"`},
		{name: "negative db", url: "redis://h/-1", wantErr: `database "-1"`},
		{name: "deep path", url: "redis://h/0/1", wantErr: "want /DB"},
		{name: "sentinel without master", url: "redis+sentinel://s1", wantErr: "missing master name"},
		{name: "sentinel deep path", url: "redis+sentinel://s1/m/0/x", wantErr: "want /MASTER[/DB]"},
		{name: "cluster with db", url: "redis+cluster://n1/0", wantErr: "only database 0"},
		{name: "fragment", url: "redis://h#x", wantErr: "fragment"},
		{name: "unknown option", url: "redis://h?timeout=1s", wantErr: `unknown option "timeout"`},
		{name: "duplicate option", url: "redis://h?pool_size=1&pool_size=2", wantErr: `"pool_size" given twice`},
		{name: "bad duration", url: "redis://h?dial_timeout=5", wantErr: `dial_timeout="5"`},
		{name: "negative duration", url: "redis://h?read_timeout=-1s", wantErr: "positive duration"},
		{name: "zero pool", url: "redis://h?pool_size=0", wantErr: "from 1"},
		{name: "TLS option without TLS", url: "redis://h?tls_server_name=x", wantErr: "rediss schemes only"},
		{name: "sentinel option without sentinel", url: "redis://h?sentinel_password=x", wantErr: "redis+sentinel only"},
		{name: "bad escape in password", url: "redis://:%zz@h", wantErr: "percent-encoding in the password"},
		{name: "bad host character", url: "redis://h%41:1", wantErr: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURL(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURL(%q) error = %v, want one containing %q", tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if (got.TLSConfig != nil) != tt.tls {
				t.Fatalf("TLS = %v, want %v", got.TLSConfig != nil, tt.tls)
			}
			if tt.tls && got.TLSConfig.ServerName != tt.sni {
				t.Fatalf("TLS server name %q, want %q", got.TLSConfig.ServerName, tt.sni)
			}
			want := tt.want
			want.ContextTimeoutEnabled = true
			opts := cmpopts.IgnoreFields(redis.UniversalOptions{}, "TLSConfig")
			if diff := cmp.Diff(want, *got, opts, cmpopts.IgnoreUnexported(redis.UniversalOptions{})); diff != "" {
				t.Fatalf("ParseURL(%q) (-want +got):\n%s", tt.url, diff)
			}
		})
	}
}

func TestParseURLPicksTheClientKind(t *testing.T) {
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"standalone", "redis://127.0.0.1:1", "*redis.Client"},
		{"sentinel", "redis+sentinel://127.0.0.1:1/m", "*redis.Client"}, // a failover client is a *redis.Client
		{"cluster of one seed", "redis+cluster://127.0.0.1:1", "*redis.ClusterClient"},
		{"cluster", "redis+cluster://127.0.0.1:1,127.0.0.1:2", "*redis.ClusterClient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseURL(tt.url)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			c := redis.NewUniversalClient(o)
			defer c.Close()
			if got := typeName(c); got != tt.want {
				t.Fatalf("client %s, want %s", got, tt.want)
			}
		})
	}
}

func typeName(c redis.UniversalClient) string {
	switch c.(type) {
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	case *redis.Client:
		return "*redis.Client"
	}
	return "other"
}

// The password never reaches an error message, whatever else is wrong with
// the URL.
func TestParseURLErrorsHideThePassword(t *testing.T) {
	const secret = "Sup3rS3cret"
	broken := []string{
		"redis://:" + secret + "@h:notaport",
		"redis://:" + secret + "@",
		"redis://:" + secret + "@a,b",
		"redis://:" + secret + "@h/x",
		"redis://:" + secret + "@h?bogus=1",
		"redis://user:" + secret + "@[::1",
		"redis+sentinel://:" + secret + "@s1",
		"redis+cluster://:" + secret + "@n1/1",
		"redis://:" + secret + "%zz@h",
		"redis://h?sentinel_password=" + secret,
		"redis+sentinel://h/m?sentinel_password=" + secret + "%zz",
		"ftp://:" + secret + "@h",
	}
	for _, u := range broken {
		_, err := ParseURL(u)
		if err == nil {
			t.Fatalf("ParseURL(%q) succeeded, want an error", u)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("ParseURL error reveals the password: %v", err)
		}
	}
}

// FuzzParseURL: no input panics, and what parses is usable: at least one
// address, each a valid host:port, and a master name exactly for Sentinel.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://h:1/2", "rediss://:pw@h", "redis+sentinel://a,b:2/m/1?dial_timeout=1s",
		"redis+cluster://a:1,[::1]:2?pool_size=3", "redis://[::1", "redis://h?x=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseURL(s)
		if err != nil {
			return
		}
		if len(o.Addrs) == 0 {
			t.Fatalf("ParseURL(%q) gave no address", s)
		}
		for _, a := range o.Addrs {
			if _, err := parseHost(a, "1"); err != nil {
				t.Fatalf("ParseURL(%q) gave address %q that does not parse back: %v", s, a, err)
			}
		}
		sentinel := strings.Contains(strings.ToLower(s[:strings.Index(s, "://")]), "sentinel")
		if (o.MasterName != "") != sentinel {
			t.Fatalf("ParseURL(%q): master name %q for a sentinel URL=%v", s, o.MasterName, sentinel)
		}
		if o.DB < 0 {
			t.Fatalf("ParseURL(%q): negative db %d", s, o.DB)
		}
	})
}

// FuzzParseURLHidesThePassword builds a URL around a password and checks
// that the outcome does not depend on which password it is: the same error
// text, or the same addresses. An error that quoted any part of the
// password would differ.
func FuzzParseURLHidesThePassword(f *testing.F) {
	f.Add("redis", "h:1", "/0?pool_size=2", "s3cret")
	f.Add("redis+sentinel", "a,b", "/m", "p@ss/w?rd")
	f.Add("redis", "h:x", "", "a:b")
	f.Add("redis+cluster", "", "/1", "%zz")
	f.Fuzz(func(t *testing.T, scheme, hosts, rest, password string) {
		build := func(pw string) string {
			return scheme + "://" + url.UserPassword("user", pw).String() + "@" + hosts + rest
		}
		o1, err1 := ParseURL(build(password))
		o2, err2 := ParseURL(build("other-password"))
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("the password changed whether %q parses: %v / %v", build(password), err1, err2)
		}
		if err1 != nil {
			if err1.Error() != err2.Error() {
				t.Fatalf("the error depends on the password:\n%v\n%v", err1, err2)
			}
			return
		}
		if !strings.Contains(hosts+rest, "@") && o1.Password != password {
			t.Fatalf("password %q parsed as %q", password, o1.Password)
		}
		if !cmp.Equal(o1.Addrs, o2.Addrs) {
			t.Fatalf("addresses depend on the password: %v / %v", o1.Addrs, o2.Addrs)
		}
	})
}
