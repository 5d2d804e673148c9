package manifests

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/api/security/v1"
	telemetryv1 "istio.io/api/telemetry/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/rules"
)

// The rate_limits are compared with a value built here from the two
// packages' constants: authz's metadata keys (pkg/authz Meta*) on the
// reading side, ratelimit's descriptor entries (pkg/rules Entry*) and
// the catalog's scope names on the writing side. Renaming a constant in
// either package changes this value, and the shipped YAML no longer
// equals it; renaming a key in the YAML does the same. The behavioural
// test below then proves the shapes also resolve: authz's Metadata goes
// through Envoy's action semantics (Descriptors) into rules.Set.Resolve.

// metaAction is a metadata action reading one ext_authz key.
func metaAction(entry, metaKey string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{
		Metadata: &routev3.RateLimit_Action_MetaData{
			DescriptorKey: entry,
			Source:        routev3.RateLimit_Action_MetaData_DYNAMIC,
			MetadataKey: &metadatav3.MetadataKey{
				Key:  ExtAuthzNamespace,
				Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: metaKey}}},
			},
		},
	}}
}

// level is DESIGN's descriptor for one policy level.
func level(scope catalog.Scope, counter, policy, group string) *routev3.RateLimit {
	acts := []*routev3.RateLimit_Action{
		{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{
			DescriptorKey: rules.EntryScope, DescriptorValue: scope.String(),
		}}},
		metaAction(rules.EntryCounter, counter),
		metaAction(rules.EntryPolicy, policy),
	}
	if group != "" {
		acts = append(acts, metaAction(rules.EntryGroup, group))
	}
	return &routev3.RateLimit{Actions: acts}
}

func contractRateLimits() []*routev3.RateLimit {
	return []*routev3.RateLimit{
		level(catalog.ScopeSubscription, authz.MetaSubscriptionCounter, authz.MetaSubscriptionPolicy, ""),
		level(catalog.ScopeApplication, authz.MetaApplicationCounter, authz.MetaApplicationPolicy, ""),
		level(catalog.ScopeAPI, authz.MetaAPICounter, authz.MetaAPIPolicy, authz.MetaAPIPolicyGroup),
		level(catalog.ScopeResource, authz.MetaResourceCounter, authz.MetaResourcePolicy, authz.MetaResourcePolicyGroup),
	}
}

var envoyFilters = []struct{ path, context string }{
	{GatewayEnvoyFilter, "GATEWAY"},
	{SidecarEnvoyFilter, "SIDECAR_INBOUND"},
}

func TestShippedRateLimitsReadAuthzKeysIntoRulesEntries(t *testing.T) {
	for _, ef := range envoyFilters {
		t.Run(ef.path, func(t *testing.T) {
			got, err := RateLimits(FS(), ef.path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(contractRateLimits(), got, protocmp.Transform()); diff != "" {
				t.Errorf("rate_limits differ from the authz/rules contract (-contract +shipped):\n%s", diff)
			}
		})
	}
}

// A catalog with one policy per level and a condition group at the api
// and resource levels, for the descriptors to resolve against.
const contractCatalog = `
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: plan}
spec: {scope: subscription, limits: [{requests: 10, per: 1m}]}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: per-app}
spec: {scope: application, limits: [{requests: 10, per: 1s}]}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: api-wide}
spec:
  scope: api
  limits: [{requests: 100, per: 1m}]
  conditionGroups:
    - description: partners
      conditions: [{ip: {cidr: 198.51.100.0/24}}]
      limits: [{requests: 1000, per: 1m}]
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: writes}
spec: {scope: resource, limits: [{requests: 5, per: 1m}]}
`

func TestDescriptorsFromAuthzMetadataResolveInRules(t *testing.T) {
	docs, err := catalog.Decode("contract.yaml", []byte(contractCatalog))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.Build(docs)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(nil, snap.Policies())
	if err != nil {
		t.Fatal(err)
	}
	full := authz.Metadata{
		API: "petstore:v1", Operation: "POST /pets", Application: "mobile", KeyType: "PRODUCTION",
		SubscriptionCounter: "mobile:petstore:v1", SubscriptionPolicy: "plan",
		ApplicationCounter: "mobile:alice", ApplicationPolicy: "per-app",
		APICounter: "petstore:v1", APIPolicy: "api-wide", APIPolicyGroup: "partners",
		ResourceCounter: "petstore:v1:POST /pets", ResourcePolicy: "writes", ResourcePolicyGroup: rules.DefaultGroup,
		RequestID: "r-1",
	}
	without := func(clear func(*authz.Metadata)) authz.Metadata { m := full; clear(&m); return m }
	tests := []struct {
		name string
		md   authz.Metadata
		want []string // scope/policy/group/counter of each resolved rule, in order
	}{
		{"every level", full, []string{
			"subscription/plan/default/mobile:petstore:v1", "application/per-app/default/mobile:alice",
			"api/api-wide/partners/petstore:v1", "resource/writes/default/petstore:v1:POST /pets"}},
		{"a level without a policy builds no descriptor", without(func(m *authz.Metadata) {
			m.ApplicationCounter, m.ApplicationPolicy = "", ""
			m.ResourceCounter, m.ResourcePolicy, m.ResourcePolicyGroup = "", "", ""
		}), []string{"subscription/plan/default/mobile:petstore:v1", "api/api-wide/partners/petstore:v1"}},
		{"no policy at all: Envoy does not call ratelimit", authz.Metadata{API: "petstore:v1", RequestID: "r-2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dyn, err := structpb.NewStruct(toAny(tt.md.Map()))
			if err != nil {
				t.Fatal(err)
			}
			md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{ExtAuthzNamespace: dyn}}
			for _, ef := range envoyFilters {
				limits, err := RateLimits(FS(), ef.path)
				if err != nil {
					t.Fatal(err)
				}
				descs, err := Descriptors(limits, md)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for i, res := range set.Resolve(rules.PortcullisDomain, descs) {
					if res.Outcome != rules.Limited {
						t.Fatalf("%s: descriptor %v resolved %s, want limited", ef.path, descs[i], res.Outcome)
					}
					r := res.Rule
					got = append(got, r.Scope+"/"+r.Policy+"/"+r.Group+"/"+strings.TrimPrefix(r.Key, rules.PortcullisDomain+"|"+r.Scope+"|"+r.Policy+"|"+r.Group+"|"))
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s: resolved rules (-want +got):\n%s", ef.path, diff)
				}
			}
		})
	}
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestDescriptorsFollowEnvoyActionSemantics(t *testing.T) {
	dyn := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"ns": mustStruct(t, map[string]any{"s": "v", "empty": "", "n": 3.0, "nested": map[string]any{"k": "deep"}}),
	}}
	meta := func(key string, path ...string) *routev3.RateLimit_Action_MetaData {
		mk := &metadatav3.MetadataKey{Key: key}
		for _, p := range path {
			mk.Path = append(mk.Path, &metadatav3.MetadataKey_PathSegment{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: p}})
		}
		return &routev3.RateLimit_Action_MetaData{DescriptorKey: "d", MetadataKey: mk}
	}
	act := func(m *routev3.RateLimit_Action_MetaData) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: m}}
	}
	generic := &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorValue: "g"}}}
	withDefault := meta("ns", "missing")
	withDefault.DefaultValue = "dflt"
	skipping := meta("ns", "missing")
	skipping.SkipIfAbsent = true
	tests := []struct {
		name    string
		actions []*routev3.RateLimit_Action
		want    string // entries as k=v, descriptors separated by |; "" for none
		wantErr string
	}{
		{"generic_key defaults its key", []*routev3.RateLimit_Action{generic}, "generic_key=g", ""},
		{"a string value matches", []*routev3.RateLimit_Action{generic, act(meta("ns", "s"))}, "generic_key=g,d=v", ""},
		{"a nested path is walked", []*routev3.RateLimit_Action{act(meta("ns", "nested", "k"))}, "d=deep", ""},
		{"a missing key drops the descriptor", []*routev3.RateLimit_Action{generic, act(meta("ns", "missing"))}, "", ""},
		{"an empty string drops it", []*routev3.RateLimit_Action{act(meta("ns", "empty"))}, "", ""},
		{"a number is not a string", []*routev3.RateLimit_Action{act(meta("ns", "n"))}, "", ""},
		{"a missing namespace drops it", []*routev3.RateLimit_Action{act(meta("other", "s"))}, "", ""},
		{"a path through a string drops it", []*routev3.RateLimit_Action{act(meta("ns", "s", "k"))}, "", ""},
		{"default_value fills in", []*routev3.RateLimit_Action{act(withDefault)}, "d=dflt", ""},
		{"skip_if_absent keeps the rest", []*routev3.RateLimit_Action{generic, act(skipping)}, "generic_key=g", ""},
		{"another action is refused", []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{}}}, "", "not simulated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			descs, err := Descriptors([]*routev3.RateLimit{{Actions: tt.actions}}, dyn)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := formatDescriptors(descs); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func formatDescriptors(ds []*rlv3.RateLimitDescriptor) string {
	var parts []string
	for _, d := range ds {
		var es []string
		for _, e := range d.GetEntries() {
			es = append(es, e.GetKey()+"="+e.GetValue())
		}
		parts = append(parts, strings.Join(es, ","))
	}
	return strings.Join(parts, "|")
}

// grpcPort returns a rendered Service's gRPC port, which must be named
// grpc-* and say appProtocol grpc so that Istio speaks HTTP/2 to it.
func grpcPort(t *testing.T, svc *corev1.Service) corev1.ServicePort {
	t.Helper()
	var hits []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if strings.HasPrefix(p.Name, "grpc-") {
			hits = append(hits, p)
		}
	}
	if len(hits) != 1 {
		t.Fatalf("Service %s: want one grpc-* port, have %d", svc.Name, len(hits))
	}
	if hits[0].AppProtocol == nil || *hits[0].AppProtocol != "grpc" {
		t.Errorf("Service %s port %s: appProtocol must be grpc", svc.Name, hits[0].Name)
	}
	return hits[0]
}

func serviceHost(svc *corev1.Service) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace)
}

// appConfig reads a shipped config file's values that the wiring depends
// on, with the binaries' defaults where the file is silent.
type appConfigValues struct {
	Server config.Server `yaml:"server"`
	IdP    struct {
		Timeout      time.Duration `yaml:"timeout"`
		EnvoyTimeout time.Duration `yaml:"envoyTimeout"`
	} `yaml:"idp"`
	Limiter struct {
		Timeout time.Duration `yaml:"timeout"`
	} `yaml:"limiter"`
}

func readAppConfig(t *testing.T, file string) appConfigValues {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v := appConfigValues{Server: config.DefaultServer("", "")}
	// Not strict: this reads a few keys of a file the binary itself
	// checks strictly at start (TestBinariesStartWithTheRenderedConfiguration).
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func TestRateLimitFilterCallsTheRateLimitService(t *testing.T) {
	base := render(t, "base")
	svc := find[*corev1.Service](t, base, "Service", "portcullis-ratelimit")
	port := grpcPort(t, svc)
	cluster := fmt.Sprintf("outbound|%d||%s", port.Port, serviceHost(svc))
	limiter := readAppConfig(t, "base/config/ratelimit.yaml").Limiter.Timeout
	if limiter <= 0 {
		t.Fatal("base/config/ratelimit.yaml: limiter.timeout must be set: the filter's timeout is checked against it")
	}
	var filters []*hcmv3.HttpFilter
	for _, ef := range envoyFilters {
		t.Run(ef.path, func(t *testing.T) {
			ds := walk(t)
			var obj *istioObject
			for _, d := range ds {
				if d.file == ef.path && d.kind == "EnvoyFilter" {
					obj = d.obj.(*istioObject)
				}
			}
			if obj == nil {
				t.Fatalf("no EnvoyFilter in %s", ef.path)
			}
			spec := obj.msg.(*networkingv1alpha3.EnvoyFilter)
			var inserts int
			for _, p := range spec.GetConfigPatches() {
				if got := p.GetMatch().GetContext().String(); got != ef.context {
					t.Errorf("patch %s: context %s, want %s", p.GetApplyTo(), got, ef.context)
				}
				if p.GetApplyTo() != networkingv1alpha3.EnvoyFilter_HTTP_FILTER {
					continue
				}
				inserts++
				lm := p.GetMatch().GetListener().GetFilterChain().GetFilter()
				if lm.GetName() != wellknown.HTTPConnectionManager || lm.GetSubFilter().GetName() != wellknown.Router ||
					p.GetPatch().GetOperation() != networkingv1alpha3.EnvoyFilter_Patch_INSERT_BEFORE {
					t.Errorf("the rate-limit filter must be inserted before %s in %s", wellknown.Router, wellknown.HTTPConnectionManager)
				}
				raw, err := protojson.Marshal(p.GetPatch().GetValue())
				if err != nil {
					t.Fatal(err)
				}
				var hf hcmv3.HttpFilter
				if err := strictProto(raw, &hf); err != nil {
					t.Fatal(err)
				}
				filters = append(filters, &hf)
				var cfg rlfilterv3.RateLimit
				if err := hf.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
					t.Fatalf("typed_config is not %s: %v", proto.MessageName(&cfg), err)
				}
				checks := []struct {
					what      string
					got, want any
				}{
					{"filter name", hf.GetName(), wellknown.HTTPRateLimit},
					{"domain", cfg.GetDomain(), rules.PortcullisDomain},
					{"cluster", cfg.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName(), cluster},
					{"transport_api_version", cfg.GetRateLimitService().GetTransportApiVersion(), corev3.ApiVersion_V3},
					{"stage", cfg.GetStage(), uint32(0)}, // the stage of the rate_limits
				}
				for _, c := range checks {
					if c.got != c.want {
						t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
					}
				}
				if got := cfg.GetTimeout().AsDuration(); got <= limiter {
					t.Errorf("timeout %v must exceed ratelimit's limiter.timeout %v, or Envoy gives up before ratelimit's failure mode answers", got, limiter)
				}
				if cfg.GetEnableXRatelimitHeaders() != rlfilterv3.RateLimit_DRAFT_VERSION_03 {
					t.Errorf("enable_x_ratelimit_headers is %s", cfg.GetEnableXRatelimitHeaders())
				}
			}
			if inserts != 1 {
				t.Errorf("want one HTTP_FILTER patch, have %d", inserts)
			}
		})
	}
	if len(filters) == 2 && !proto.Equal(filters[0], filters[1]) {
		t.Errorf("the gateway and sidecar rate-limit filters differ:\n%v\n%v", filters[0], filters[1])
	}
}

func TestMeshConfigPointsAtAuthz(t *testing.T) {
	base := render(t, "base")
	svc := find[*corev1.Service](t, base, "Service", "portcullis-authz")
	port := grpcPort(t, svc)
	cfg := readAppConfig(t, "base/config/authz.yaml")
	ds := walk(t)
	op := find[*istioOperator](t, ds, "IstioOperator", "portcullis")
	providers := map[string]*meshv1alpha1.MeshConfig_ExtensionProvider{}
	for _, p := range op.mesh.GetExtensionProviders() {
		providers[p.GetName()] = p
	}

	az := providers["portcullis-authz"].GetEnvoyExtAuthzGrpc()
	if az == nil {
		t.Fatal("no envoyExtAuthzGrpc provider portcullis-authz")
	}
	timeout := az.GetTimeout().AsDuration()
	checks := []struct {
		what      string
		got, want any
	}{
		{"ext_authz service", az.GetService(), serviceHost(svc)},
		{"ext_authz port", az.GetPort(), uint32(port.Port)},
		{"ext_authz failOpen", az.GetFailOpen(), false},
		{"ext_authz statusOnError", az.GetStatusOnError(), "503"},
		// authz's config states the timeout Envoy was given, so that it
		// can check its own IdP timeout against it.
		{"ext_authz timeout = authz idp.envoyTimeout", timeout, cfg.IdP.EnvoyTimeout},
	}
	als := providers["portcullis-als"].GetEnvoyHttpAls()
	if als == nil {
		t.Fatal("no envoyHttpAls provider portcullis-als")
	}
	checks = append(checks, []struct {
		what      string
		got, want any
	}{
		{"access-log service", als.GetService(), serviceHost(svc)},
		{"access-log port (authz's gRPC port)", als.GetPort(), uint32(port.Port)},
	}...)
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	if timeout <= cfg.IdP.Timeout || timeout >= 10*time.Second {
		t.Errorf("ext_authz timeout %v: must exceed authz's idp.timeout %v and stay well below Istio's 600s default", timeout, cfg.IdP.Timeout)
	}

	var policies, telemetries int
	for _, d := range ds {
		obj, ok := d.obj.(*istioObject)
		if !ok {
			continue
		}
		switch m := obj.msg.(type) {
		case *securityv1.AuthorizationPolicy:
			policies++
			if m.GetAction() != securityv1.AuthorizationPolicy_CUSTOM {
				t.Errorf("%s: action %s, want CUSTOM", d.file, m.GetAction())
			}
			if p := providers[m.GetProvider().GetName()]; p.GetEnvoyExtAuthzGrpc() == nil {
				t.Errorf("%s: provider %q is no envoyExtAuthzGrpc provider of the meshConfig", d.file, m.GetProvider().GetName())
			}
		case *telemetryv1.Telemetry:
			telemetries++
			for _, al := range m.GetAccessLogging() {
				for _, p := range al.GetProviders() {
					if providers[p.GetName()].GetEnvoyHttpAls() == nil {
						t.Errorf("%s: provider %q is no envoyHttpAls provider of the meshConfig", d.file, p.GetName())
					}
				}
			}
		}
	}
	if policies != 2 || telemetries != 2 {
		t.Errorf("want an AuthorizationPolicy and a Telemetry for the gateway and the sidecars, have %d and %d", policies, telemetries)
	}
}
