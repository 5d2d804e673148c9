package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/api/networking/v1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/api/security/v1"
	telemetryv1 "istio.io/api/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	// The typed_config of the shipped HTTP filter resolves through the
	// global type registry: importing its package registers it.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// A decoded is one document checked against its real type.
type decoded struct {
	file string
	line int
	kind string
	name string
	ns   string
	obj  any // *appsv1.Deployment, *istioObject, ...
}

// istioObject is an Istio custom resource: Kubernetes' envelope, decoded
// strictly into metav1 types, and the spec as Istio's own proto message.
type istioObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
	msg        proto.Message
}

// istioOperator is the IstioOperator envelope. Its full type lives in
// istio.io/istio (the whole control plane as a dependency); the fields
// used here are mirrored and checked strictly, and meshConfig, the part
// that matters, decodes into istio.io/api's MeshConfig.
type istioOperator struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Profile    string          `json:"profile"`
		MeshConfig json.RawMessage `json:"meshConfig"`
	} `json:"spec"`
	mesh *meshv1alpha1.MeshConfig
}

// kubeTypes are the Kubernetes kinds the manifests may hold, by
// apiVersion and kind. Anything else fails the walk.
var kubeTypes = map[string]func() any{
	"v1/Namespace":                  func() any { return new(corev1.Namespace) },
	"v1/ServiceAccount":             func() any { return new(corev1.ServiceAccount) },
	"v1/Service":                    func() any { return new(corev1.Service) },
	"v1/ConfigMap":                  func() any { return new(corev1.ConfigMap) },
	"apps/v1/Deployment":            func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget": func() any { return new(policyv1.PodDisruptionBudget) },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return new(kustypes.Kustomization) },
}

// istioTypes are Istio's kinds, each with its spec's message type.
var istioTypes = map[string]func() proto.Message{
	"security.istio.io/v1/AuthorizationPolicy": func() proto.Message { return new(securityv1.AuthorizationPolicy) },
	"networking.istio.io/v1alpha3/EnvoyFilter": func() proto.Message { return new(networkingv1alpha3.EnvoyFilter) },
	"networking.istio.io/v1/Gateway":           func() proto.Message { return new(networkingv1.Gateway) },
	"networking.istio.io/v1/VirtualService":    func() proto.Message { return new(networkingv1.VirtualService) },
	"telemetry.istio.io/v1/Telemetry":          func() proto.Message { return new(telemetryv1.Telemetry) },
}

// patchTypes are the Envoy types an EnvoyFilter patch value is, by
// applyTo, as Istio converts them.
var patchTypes = map[networkingv1alpha3.EnvoyFilter_ApplyTo]func() proto.Message{
	networkingv1alpha3.EnvoyFilter_HTTP_FILTER:  func() proto.Message { return new(hcmv3.HttpFilter) },
	networkingv1alpha3.EnvoyFilter_VIRTUAL_HOST: func() proto.Message { return new(routev3.VirtualHost) },
	networkingv1alpha3.EnvoyFilter_HTTP_ROUTE:   func() proto.Message { return new(routev3.Route) },
	networkingv1alpha3.EnvoyFilter_CLUSTER:      func() proto.Message { return new(clusterv3.Cluster) },
}

// strictJSON decodes data into v, refusing unknown fields and trailing
// data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

// strictProto decodes JSON into m with protojson, whose default refuses
// unknown fields and resolves "@type" through the global registry.
func strictProto(data []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(data, m)
}

// decodeDocument checks one document against its real type.
func decodeDocument(file string, d document) (decoded, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(d.JSON, &head); err != nil {
		return decoded{}, fmt.Errorf("%s:%d: %w", file, d.Line, err)
	}
	out := decoded{file: file, line: d.Line, kind: head.Kind, name: head.Metadata.Name, ns: head.Metadata.Namespace}
	gvk := head.APIVersion + "/" + head.Kind
	switch {
	case kubeTypes[gvk] != nil:
		obj := kubeTypes[gvk]()
		if err := strictJSON(d.JSON, obj); err != nil {
			return out, fmt.Errorf("%s:%d: %s: %w", file, d.Line, gvk, err)
		}
		out.obj = obj
	case istioTypes[gvk] != nil:
		obj := &istioObject{msg: istioTypes[gvk]()}
		if err := strictJSON(d.JSON, obj); err != nil {
			return out, fmt.Errorf("%s:%d: %s: %w", file, d.Line, gvk, err)
		}
		if err := strictProto(obj.Spec, obj.msg); err != nil {
			return out, fmt.Errorf("%s:%d: %s spec: %w", file, d.Line, gvk, err)
		}
		if ef, ok := obj.msg.(*networkingv1alpha3.EnvoyFilter); ok {
			if err := checkPatches(ef); err != nil {
				return out, fmt.Errorf("%s:%d: EnvoyFilter %s: %w", file, d.Line, head.Metadata.Name, err)
			}
		}
		out.obj = obj
	case gvk == "install.istio.io/v1alpha1/IstioOperator":
		obj := &istioOperator{mesh: new(meshv1alpha1.MeshConfig)}
		if err := strictJSON(d.JSON, obj); err != nil {
			return out, fmt.Errorf("%s:%d: %s: %w", file, d.Line, gvk, err)
		}
		if err := strictProto(obj.Spec.MeshConfig, obj.mesh); err != nil {
			return out, fmt.Errorf("%s:%d: meshConfig: %w", file, d.Line, err)
		}
		out.obj = obj
	default:
		return out, fmt.Errorf("%s:%d: %q is no kind these tests know: add its real type to kubeTypes or istioTypes", file, d.Line, gvk)
	}
	return out, nil
}

// checkPatches decodes every patch value into the Envoy type Istio would
// build from it, and validates it with Envoy's own constraints
// (protoc-gen-validate), so a misspelt field or a missing required one
// fails here rather than in istiod's logs.
func checkPatches(ef *networkingv1alpha3.EnvoyFilter) error {
	for i, p := range ef.GetConfigPatches() {
		newMsg := patchTypes[p.GetApplyTo()]
		if newMsg == nil {
			return fmt.Errorf("configPatches[%d]: applyTo %s has no Envoy type in patchTypes", i, p.GetApplyTo())
		}
		raw, err := protojson.Marshal(p.GetPatch().GetValue())
		if err != nil {
			return fmt.Errorf("configPatches[%d]: %w", i, err)
		}
		m := newMsg()
		if err := strictProto(raw, m); err != nil {
			return fmt.Errorf("configPatches[%d] (%s): %w", i, p.GetApplyTo(), err)
		}
		if err := validatePatch(m); err != nil {
			return fmt.Errorf("configPatches[%d] (%s): %w", i, p.GetApplyTo(), err)
		}
	}
	return nil
}

// validatePatch runs Envoy's field constraints on what a patch adds. A
// MERGE into a VirtualHost is partial (no name, no domains), so its rate
// limits are validated one by one; an HTTP filter is whole, and its
// typed_config is validated as its own type.
func validatePatch(m proto.Message) error {
	type validator interface{ ValidateAll() error }
	switch m := m.(type) {
	case *routev3.VirtualHost:
		for i, rl := range m.GetRateLimits() {
			if err := rl.ValidateAll(); err != nil {
				return fmt.Errorf("rate_limits[%d]: %w", i, err)
			}
		}
		return nil
	case *hcmv3.HttpFilter:
		if err := m.ValidateAll(); err != nil {
			return err
		}
		cfg, err := m.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return fmt.Errorf("typed_config: %w", err)
		}
		if v, ok := cfg.(validator); ok {
			return v.ValidateAll()
		}
		return fmt.Errorf("typed_config %T has no validation", cfg)
	default:
		if v, ok := m.(validator); ok {
			return v.ValidateAll()
		}
		return nil
	}
}

// appConfigs are the binaries' own config files, which have no
// apiVersion: each is checked by starting its binary with it
// (TestBinariesStartWithTheRenderedConfiguration), whose loader refuses
// unknown keys.
var appConfigs = map[string]string{
	"base/config/authz.yaml":     "authz",
	"base/config/ratelimit.yaml": "ratelimit",
}

// isCatalog reports whether a manifests file is a Portcullis catalog.
func isCatalog(p string) bool {
	return path.Base(path.Dir(p)) == "catalog" || path.Base(p) == "catalog.yaml"
}

// walk decodes every YAML document under the manifests directory, each
// strictly into its real type, and returns them with the catalogs'
// documents.
func walk(t *testing.T) []decoded {
	t.Helper()
	var out []decoded
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (path.Ext(p) != ".yaml" && path.Ext(p) != ".yml") {
			return err
		}
		data, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		switch {
		case appConfigs[p] != "":
			if _, err := documents(data); err != nil {
				t.Errorf("%s: %v", p, err)
			}
			return nil
		case isCatalog(p):
			docs, err := catalog.Decode(p, data)
			if err != nil {
				t.Errorf("catalog %s: %v", p, err)
				return nil
			}
			if _, err := catalog.Build(docs); err != nil {
				t.Errorf("catalog %s: %v", p, err)
			}
			return nil
		}
		docs, err := documents(data)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if len(docs) == 0 {
			t.Errorf("%s: no document", p)
		}
		for _, doc := range docs {
			dd, err := decodeDocument(p, doc)
			if err != nil {
				t.Error(err)
				continue
			}
			out = append(out, dd)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk manifests: %v", err)
	}
	return out
}

// kustomizations are the directories users apply with kubectl apply -k.
var kustomizations = []string{"base", "example", "istio/gateway", "istio/sidecar"}

// render builds a kustomization as kubectl apply -k would, with
// kustomize's own library, and decodes every resulting resource strictly.
func render(t *testing.T, dir string) []decoded {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := res.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	docs, err := documents(y)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []decoded
	for _, doc := range docs {
		dd, err := decodeDocument("kustomize build "+dir, doc)
		if err != nil {
			t.Error(err)
			continue
		}
		out = append(out, dd)
	}
	return out
}

// find returns the one decoded object of kind and name, failing the test
// when there is not exactly one.
func find[T any](t *testing.T, ds []decoded, kind, name string) T {
	t.Helper()
	var hits []T
	for _, d := range ds {
		if d.kind == kind && d.name == name {
			if v, ok := d.obj.(T); ok {
				hits = append(hits, v)
			}
		}
	}
	if len(hits) != 1 {
		var zero T
		t.Fatalf("want one %s %q of type %T, found %d", kind, name, zero, len(hits))
		return zero
	}
	return hits[0]
}

func TestEveryDocumentDecodesStrictlyIntoItsRealType(t *testing.T) {
	ds := walk(t)
	kinds := map[string]int{}
	for _, d := range ds {
		kinds[d.kind]++
	}
	// The walk must have met every kind the wiring is made of: a file
	// renamed out of its .yaml extension would otherwise escape the check.
	for _, k := range []string{"Kustomization", "Namespace", "ServiceAccount", "Deployment", "Service",
		"PodDisruptionBudget", "AuthorizationPolicy", "EnvoyFilter", "Telemetry", "IstioOperator",
		"Gateway", "VirtualService"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the manifests", k)
		}
	}
}

func TestKustomizationsRenderAndDecodeStrictly(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			ds := render(t, dir)
			if len(ds) == 0 {
				t.Fatalf("%s renders nothing", dir)
			}
			for _, d := range ds {
				if cm, ok := d.obj.(*corev1.ConfigMap); ok && cm.Name == "portcullis-catalog" {
					docs, err := catalog.Decode(cm.Name, []byte(cm.Data["catalog.yaml"]))
					if err != nil {
						t.Fatalf("rendered catalog: %v", err)
					}
					if _, err := catalog.Build(docs); err != nil {
						t.Fatalf("rendered catalog: %v", err)
					}
				}
			}
		})
	}
}

// The strict decoders must refuse what they are meant to refuse, or the
// tests above would pass on anything.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	tests := []struct {
		name, file, yaml, want string
	}{
		{"deployment field", "x.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replica: 2}\n", `unknown field "replica"`},
		{"envelope field", "x.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a, label: {}}\n", `unknown field "label"`},
		{"istio spec field", "x.yaml", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {actions: CUSTOM}\n", `unknown field "actions"`},
		{"istio envelope field", "x.yaml", "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: a}\nspecs: {}\n", `unknown field "specs"`},
		{"envoy patch field", "x.yaml", "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: a}\nspec:\n  configPatches:\n  - applyTo: VIRTUAL_HOST\n    patch: {operation: MERGE, value: {rate_limit: []}}\n", `unknown field "rate_limit"`},
		{"envoy typed_config field", "x.yaml", "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: a}\nspec:\n  configPatches:\n  - applyTo: HTTP_FILTER\n    patch:\n      operation: INSERT_BEFORE\n      value: {name: f, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit, domain: d, failure_mode: true}}\n", `unknown field "failure_mode"`},
		{"envoy constraint", "x.yaml", "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: a}\nspec:\n  configPatches:\n  - applyTo: HTTP_FILTER\n    patch:\n      operation: INSERT_BEFORE\n      value: {name: f, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit, domain: d}}\n", "RateLimitService"},
		{"mesh config field", "x.yaml", "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata: {name: a}\nspec:\n  meshConfig:\n    extensionProviders:\n    - name: p\n      envoyExtAuthzGrpc: {service: s, port: 1, failopen: true}\n", `unknown field "failopen"`},
		{"kustomization field", "x.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresource: [a.yaml]\n", `unknown field "resource"`},
		{"unknown kind", "x.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n", "no kind these tests know"},
		{"duplicate key", "x.yaml", "apiVersion: v1\nkind: Service\nkind: Service\n", "already set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := documents([]byte(tt.yaml))
			if err == nil {
				_, err = decodeDocument(tt.file, docs[0])
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
