package manifests

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	sigsyaml "sigs.k8s.io/yaml"
)

// The shipped EnvoyFilters, as paths in FS.
const (
	GatewayEnvoyFilter = "istio/gateway/envoyfilter.yaml"
	SidecarEnvoyFilter = "istio/sidecar/envoyfilter.yaml"
)

// ExtAuthzNamespace is the dynamic-metadata namespace Envoy files
// ext_authz's metadata under: the filter's name, which Istio gives the
// filter its CUSTOM action adds. The shipped rate_limits read authz's keys
// there, and DESIGN names it as the contract's namespace.
const ExtAuthzNamespace = "envoy.filters.http.ext_authz"

//go:embed base example istio
var files embed.FS

// FS returns the manifests as shipped (base/, example/, istio/), so that
// tests elsewhere read the very files users apply rather than copies.
func FS() fs.FS { return files }

// RateLimits returns the rate_limits of the EnvoyFilter at path in fsys:
// the value of each VIRTUAL_HOST patch, decoded strictly as Envoy's
// route.v3.VirtualHost (an unknown field is an error), in file order. A
// test playing Envoy's part builds its descriptors from these, so it
// exercises exactly what a user applies.
func RateLimits(fsys fs.FS, path string) ([]*routev3.RateLimit, error) {
	data, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("read rate limits: %w", err)
	}
	docs, err := documents(data)
	if err != nil {
		return nil, fmt.Errorf("read rate limits from %s: %w", path, err)
	}
	var out []*routev3.RateLimit
	for _, d := range docs {
		var ef struct {
			Kind string `json:"kind"`
			Spec struct {
				ConfigPatches []struct {
					ApplyTo string `json:"applyTo"`
					Patch   struct {
						Value json.RawMessage `json:"value"`
					} `json:"patch"`
				} `json:"configPatches"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(d.JSON, &ef); err != nil {
			return nil, fmt.Errorf("read rate limits from %s:%d: %w", path, d.Line, err)
		}
		if ef.Kind != "EnvoyFilter" {
			continue
		}
		for i, p := range ef.Spec.ConfigPatches {
			if p.ApplyTo != "VIRTUAL_HOST" {
				continue
			}
			var vh routev3.VirtualHost
			if err := protojson.Unmarshal(p.Patch.Value, &vh); err != nil {
				return nil, fmt.Errorf("read rate limits from %s:%d: configPatches[%d]: %w", path, d.Line, i, err)
			}
			out = append(out, vh.GetRateLimits()...)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read rate limits from %s: no VIRTUAL_HOST patch with rate_limits", path)
	}
	return out, nil
}

// document is one YAML document of a file, as JSON, with the line it
// starts on for error messages.
type document struct {
	Line int
	JSON []byte
}

// documents splits a YAML stream into its documents and converts each to
// JSON, refusing duplicate keys (which YAML parsers otherwise resolve
// silently, last one wins). Documents holding only comments are skipped.
func documents(data []byte) ([]document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []document
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse YAML: %w", err)
		}
		if n.Kind == 0 || (n.Kind == yaml.DocumentNode && len(n.Content) == 0) {
			continue
		}
		raw, err := yaml.Marshal(&n)
		if err != nil {
			return nil, fmt.Errorf("line %d: re-encode: %w", n.Line, err)
		}
		j, err := sigsyaml.YAMLToJSONStrict(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		if bytes.Equal(j, []byte("null")) {
			continue
		}
		out = append(out, document{Line: n.Line, JSON: j})
	}
}
