package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ParseURL reads the ratelimit binary's -redis flag into options for
// redis.NewUniversalClient, which picks a standalone, Sentinel (failover) or
// Cluster client from them. The forms are listed in the package
// documentation. Errors name the part that is wrong and never contain the
// password (nor a sentinel_password option).
func ParseURL(s string) (*redis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return nil, errors.New("redisstore: parse redis URL: missing scheme (want redis://, rediss://, redis+sentinel:// or redis+cluster://)")
	}
	kind, useTLS, err := parseScheme(scheme)
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("redisstore: parse redis URL (%s://): "+format, append([]any{scheme}, args...)...)
	}

	o := &redis.UniversalOptions{ContextTimeoutEnabled: true, IsClusterMode: kind == kindCluster}

	// The user info ends at the last '@', so that an unescaped '@', '/' or
	// '?' in a password cannot push part of it into the host list, whose
	// text errors do quote.
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		info := rest[:i]
		rest = rest[i+1:]
		user, pass, hasPass := strings.Cut(info, ":")
		if o.Username, err = url.PathUnescape(user); err != nil {
			return nil, fail("invalid percent-encoding in the user name")
		}
		if hasPass {
			if o.Password, err = url.PathUnescape(pass); err != nil {
				return nil, fail("invalid percent-encoding in the password")
			}
		}
	}
	if strings.ContainsRune(rest, '#') {
		return nil, fail("a fragment (#...) is not allowed; percent-encode '#' as %%23")
	}
	hostPart, query, _ := strings.Cut(rest, "?")
	hostList, path, hasPath := strings.Cut(hostPart, "/")

	defaultPort := "6379"
	if kind == kindSentinel {
		defaultPort = "26379"
	}
	if hostList == "" {
		return nil, fail("no host")
	}
	for h := range strings.SplitSeq(hostList, ",") {
		addr, err := parseHost(h, defaultPort)
		if err != nil {
			return nil, fail("%w", err)
		}
		o.Addrs = append(o.Addrs, addr)
	}

	segs := []string{}
	if hasPath && path != "" {
		segs = strings.Split(path, "/")
	}
	switch kind {
	case kindSingle:
		if len(o.Addrs) > 1 {
			return nil, fail("%d hosts given; list several hosts only with redis+sentinel:// or redis+cluster://", len(o.Addrs))
		}
		if len(segs) > 1 {
			return nil, fail("path %q: want /DB", "/"+path)
		}
		if len(segs) == 1 {
			if o.DB, err = parseDB(segs[0]); err != nil {
				return nil, fail("%w", err)
			}
		}
	case kindSentinel:
		if len(segs) == 0 || segs[0] == "" {
			return nil, fail("missing master name: want redis+sentinel://host:port,.../MASTER[/DB]")
		}
		if len(segs) > 2 {
			return nil, fail("path %q: want /MASTER[/DB]", "/"+path)
		}
		if o.MasterName, err = url.PathUnescape(segs[0]); err != nil {
			return nil, fail("invalid percent-encoding in the master name")
		}
		if len(segs) == 2 {
			if o.DB, err = parseDB(segs[1]); err != nil {
				return nil, fail("%w", err)
			}
		}
	case kindCluster:
		if len(segs) > 0 {
			return nil, fail("path %q: a cluster has only database 0, so the URL has no path", "/"+path)
		}
	}

	serverName := ""
	if err := parseQuery(o, kind, useTLS, query, &serverName); err != nil {
		return nil, fail("%w", err)
	}
	if useTLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if serverName == "" {
			o.TLSConfig.ServerName, _, _ = net.SplitHostPort(o.Addrs[0])
		}
	}
	return o, nil
}

type urlKind int

const (
	kindSingle urlKind = iota
	kindSentinel
	kindCluster
)

func parseScheme(scheme string) (urlKind, bool, error) {
	switch strings.ToLower(scheme) {
	case "redis":
		return kindSingle, false, nil
	case "rediss":
		return kindSingle, true, nil
	case "redis+sentinel":
		return kindSentinel, false, nil
	case "rediss+sentinel":
		return kindSentinel, true, nil
	case "redis+cluster":
		return kindCluster, false, nil
	case "rediss+cluster":
		return kindCluster, true, nil
	}
	return 0, false, fmt.Errorf("redisstore: parse redis URL: unknown scheme %q (want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster)", scheme)
}

// parseHost accepts host, host:port, [v6] and [v6]:port.
func parseHost(h, defaultPort string) (string, error) {
	if h == "" {
		return "", errors.New("empty host in the host list")
	}
	host, port := h, defaultPort
	switch {
	case strings.HasPrefix(h, "["):
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", fmt.Errorf("host %q: missing ']'", h)
		}
		host = h[1:end]
		if tail := h[end+1:]; tail != "" {
			p, ok := strings.CutPrefix(tail, ":")
			if !ok {
				return "", fmt.Errorf("host %q: want [IPv6]:port", h)
			}
			port = p
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", fmt.Errorf("host %q: %q is not an IPv6 address", h, host)
		}
	case strings.Count(h, ":") > 1:
		return "", fmt.Errorf("host %q: put an IPv6 address in brackets, as [::1]:6379", h)
	case strings.Contains(h, ":"):
		host, port, _ = strings.Cut(h, ":")
	}
	if host == "" {
		return "", fmt.Errorf("host %q: empty host name", h)
	}
	for _, r := range host {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("/?#@[]{}\\\"'<>%^`|", r) {
			return "", fmt.Errorf("host %q: invalid character %q", h, r)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
		return "", fmt.Errorf("host %q: port %q is not a number from 1 to 65535", h, port)
	}
	return net.JoinHostPort(host, port), nil
}

func parseDB(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<20 || (len(s) > 1 && s[0] == '0') || s[0] == '+' {
		return 0, fmt.Errorf("database %q is not a number from 0", s)
	}
	return n, nil
}

// secretOptions are never quoted in errors.
var secretOptions = map[string]bool{"sentinel_password": true, "sentinel_username": true}

func parseQuery(o *redis.UniversalOptions, kind urlKind, useTLS bool, query string, serverName *string) error {
	if query == "" {
		return nil
	}
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(query, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return errors.New("invalid percent-encoding in an option name")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			if secretOptions[name] {
				return fmt.Errorf("option %s: invalid percent-encoding", name)
			}
			return fmt.Errorf("option %s=%q: invalid percent-encoding", name, rawValue)
		}
		if seen[name] {
			return fmt.Errorf("option %q given twice", name)
		}
		seen[name] = true
		if err := setOption(o, kind, useTLS, name, value, serverName); err != nil {
			return err
		}
	}
	return nil
}

func setOption(o *redis.UniversalOptions, kind urlKind, useTLS bool, name, value string, serverName *string) error {
	duration := func(dst *time.Duration) error {
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return fmt.Errorf("option %s=%q: want a positive duration such as 250ms", name, value)
		}
		*dst = d
		return nil
	}
	count := func(dst *int, lo int) error {
		n, err := strconv.Atoi(value)
		if err != nil || n < lo || n > 1<<20 {
			return fmt.Errorf("option %s=%q: want a whole number from %d", name, value, lo)
		}
		*dst = n
		return nil
	}
	switch name {
	case "dial_timeout":
		return duration(&o.DialTimeout)
	case "read_timeout":
		return duration(&o.ReadTimeout)
	case "write_timeout":
		return duration(&o.WriteTimeout)
	case "pool_timeout":
		return duration(&o.PoolTimeout)
	case "pool_size":
		return count(&o.PoolSize, 1)
	case "min_idle_conns":
		return count(&o.MinIdleConns, 0)
	case "max_retries":
		if err := count(&o.MaxRetries, 0); err != nil {
			return err
		}
		if o.MaxRetries == 0 {
			o.MaxRetries = -1 // go-redis reads 0 as its default of 3
		}
		return nil
	case "client_name":
		o.ClientName = value
		return nil
	case "tls_server_name":
		if !useTLS {
			return fmt.Errorf("option %s applies to rediss schemes only", name)
		}
		*serverName = value
		return nil
	case "sentinel_username", "sentinel_password":
		if kind != kindSentinel {
			return fmt.Errorf("option %s applies to redis+sentinel only", name)
		}
		if name == "sentinel_username" {
			o.SentinelUsername = value
		} else {
			o.SentinelPassword = value
		}
		return nil
	}
	return fmt.Errorf("unknown option %q (want dial_timeout, read_timeout, write_timeout, pool_timeout, pool_size, min_idle_conns, max_retries, client_name, tls_server_name, sentinel_username, sentinel_password)", name)
}
