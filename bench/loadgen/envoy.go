package loadgen

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/proto"
)

// Service is what the generator needs to load one of the Envoy services
// Portcullis implements: how to call it, what its requests are (to parse a
// request file), and how to name an answer.
type Service struct {
	// Name is the short name the loadgen command takes: rls, authz or als.
	Name string
	// Method is the full gRPC method name.
	Method string
	// NewCaller calls Method.
	NewCaller NewCaller
	// NewRequest returns an empty request message.
	NewRequest func() proto.Message
	// Classify names an answer; nil where the method has no per-request
	// answer.
	Classify Classifier
}

// RateLimitService is Envoy's global rate limit,
// RateLimitService/ShouldRateLimit; answers are classified by their
// overall code (OK, OVER_LIMIT).
func RateLimitService() Service {
	return Service{
		Name:       "rls",
		Method:     rlsv3.RateLimitService_ShouldRateLimit_FullMethodName,
		NewCaller:  Unary(rlsv3.RateLimitService_ShouldRateLimit_FullMethodName, func() proto.Message { return new(rlsv3.RateLimitResponse) }),
		NewRequest: func() proto.Message { return new(rlsv3.RateLimitRequest) },
		Classify:   ClassifyRateLimit,
	}
}

// AuthorizationService is Envoy's ext_authz, Authorization/Check; answers
// are classified by their status code (OK, PERMISSION_DENIED,
// UNAUTHENTICATED).
func AuthorizationService() Service {
	return Service{
		Name:       "authz",
		Method:     authv3.Authorization_Check_FullMethodName,
		NewCaller:  Unary(authv3.Authorization_Check_FullMethodName, func() proto.Message { return new(authv3.CheckResponse) }),
		NewRequest: func() proto.Message { return new(authv3.CheckRequest) },
		Classify:   ClassifyCheck,
	}
}

// AccessLogService is Envoy's access-log service,
// AccessLogService/StreamAccessLogs: one stream per worker, one request
// message (a batch of log entries) per call.
func AccessLogService() Service {
	return Service{
		Name:       "als",
		Method:     alsv3.AccessLogService_StreamAccessLogs_FullMethodName,
		NewCaller:  ClientStream(alsv3.AccessLogService_StreamAccessLogs_FullMethodName, func() proto.Message { return new(alsv3.StreamAccessLogsResponse) }),
		NewRequest: func() proto.Message { return new(alsv3.StreamAccessLogsMessage) },
	}
}

// ServiceByName returns the Service called name (rls, authz or als).
func ServiceByName(name string) (Service, error) {
	for _, s := range []Service{RateLimitService(), AuthorizationService(), AccessLogService()} {
		if s.Name == name {
			return s, nil
		}
	}
	return Service{}, fmt.Errorf("unknown service %q (want rls, authz or als)", name)
}

// Class names for answers that are not what a service returns.
const (
	// ClassUnexpected is an answer of another message type than the
	// classifier expects.
	ClassUnexpected = "UNEXPECTED_RESPONSE"
)

// ClassifyRateLimit names a RateLimitResponse by its overall code.
func ClassifyRateLimit(resp proto.Message) string {
	r, ok := resp.(*rlsv3.RateLimitResponse)
	if !ok {
		return ClassUnexpected
	}
	return r.GetOverallCode().String()
}

// ClassifyCheck names a CheckResponse by its google.rpc.Code, which is
// what Envoy acts on (OK allows; anything else denies).
func ClassifyCheck(resp proto.Message) string {
	r, ok := resp.(*authv3.CheckResponse)
	if !ok {
		return ClassUnexpected
	}
	return rpccode.Code(r.GetStatus().GetCode()).String()
}

// Descriptor builds one descriptor as the shipped EnvoyFilter sends it for
// one level of DESIGN's authz→ratelimit contract: ("policy_scope", scope),
// ("counter", counter), ("policy", policy), then ("group", group) when
// group is not empty (the api and resource levels).
func Descriptor(scope, counter, policy, group string) *rlv3.RateLimitDescriptor {
	entries := []*rlv3.RateLimitDescriptor_Entry{
		{Key: "policy_scope", Value: scope},
		{Key: "counter", Value: counter},
		{Key: "policy", Value: policy},
	}
	if group != "" {
		entries = append(entries, &rlv3.RateLimitDescriptor_Entry{Key: "group", Value: group})
	}
	return &rlv3.RateLimitDescriptor{Entries: entries}
}

// RateLimitRequest builds a ShouldRateLimit request charging one hit.
func RateLimitRequest(domain string, descriptors ...*rlv3.RateLimitDescriptor) *rlsv3.RateLimitRequest {
	return &rlsv3.RateLimitRequest{Domain: domain, Descriptors: descriptors, HitsAddend: 1}
}

// CheckRequest builds the Check Envoy sends for an HTTP request: method,
// host and path (with any query) as the client sent them, and headers
// with lower-case names, as Envoy passes them.
func CheckRequest(method, host, path string, headers map[string]string) *authv3.CheckRequest {
	h := make(map[string]string, len(headers))
	for k, v := range headers {
		h[strings.ToLower(k)] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: socketAddress("127.0.0.1", 50000)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method:   method,
			Host:     host,
			Path:     path,
			Scheme:   "https",
			Protocol: "HTTP/1.1",
			Headers:  h,
		}},
	}}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// The requests the benchmarks and the example files under bench/requests
// and bench/ghz send, built from the example catalog in DESIGN: the
// application mobile-app subscribed to petstore v1 on the gold plan.

// ExampleRateLimitOne is one subscription-level descriptor: the common
// case of an API with only a plan.
func ExampleRateLimitOne() *rlsv3.RateLimitRequest {
	return RateLimitRequest("portcullis",
		Descriptor("subscription", "mobile-app:petstore:v1", "gold", ""))
}

// ExampleRateLimitFour is a descriptor at each of the four levels
// (subscription, application, api, resource): the most a request carries.
func ExampleRateLimitFour() *rlsv3.RateLimitRequest {
	return RateLimitRequest("portcullis",
		Descriptor("subscription", "mobile-app:petstore:v1", "gold", ""),
		Descriptor("application", "mobile-app:user-1", "app-50-per-second", ""),
		Descriptor("api", "petstore:v1", "petstore-api", "default"),
		Descriptor("resource", "petstore:v1:POST /pets", "petstore-writes", "default"),
	)
}

// ExampleAPIKey is the placeholder API key the example Check carries. It
// is not in the example catalog: against a real authz server, make a key
// with cmd/apikey and put its hash in the catalog.
const ExampleAPIKey = "pk_bench_0123456789abcdef0123456789abcdef"

// ExampleCheck is a GET of petstore's /pets with an API key header.
func ExampleCheck() *authv3.CheckRequest {
	return CheckRequest("GET", "api.example.com", "/petstore/v1/pets",
		map[string]string{"x-api-key": ExampleAPIKey, "user-agent": "portcullis-loadgen"})
}
