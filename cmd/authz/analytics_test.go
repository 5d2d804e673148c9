package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis-dev/portcullis/internal/poll"
	"github.com/portcullis-dev/portcullis/pkg/accesslog"
)

// accessLogEntry is what Envoy logs for a GET /petstore/v1/pets that authz
// allowed as e2e-app's, with the API key in a header and in the query.
func accessLogEntry() *alsdata.HTTPAccessLogEntry {
	return &alsdata.HTTPAccessLogEntry{
		ProtocolVersion: alsdata.HTTPAccessLogEntry_HTTP11,
		CommonProperties: &alsdata.AccessLogCommon{
			DownstreamRemoteAddress: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "192.0.2.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000},
			}}},
			StartTime:                  timestamppb.New(time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)),
			TimeToFirstUpstreamTxByte:  durationpb.New(2 * time.Millisecond),
			TimeToLastUpstreamRxByte:   durationpb.New(9 * time.Millisecond),
			TimeToLastDownstreamTxByte: durationpb.New(10 * time.Millisecond),
			ResponseFlags:              &alsdata.ResponseFlags{},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				accesslog.AuthzNamespace: {Fields: map[string]*structpb.Value{
					"api":         structpb.NewStringValue("petstore:v1"),
					"operation":   structpb.NewStringValue("GET /pets"),
					"application": structpb.NewStringValue("e2e-app"),
					"key_type":    structpb.NewStringValue("PRODUCTION"),
				}},
			}},
		},
		Request: &alsdata.HTTPRequestProperties{
			RequestMethod:  corev3.RequestMethod_GET,
			Authority:      "api.test",
			Path:           "/petstore/v1/pets?api_key=" + testKey,
			RequestId:      "als-1",
			RequestHeaders: map[string]string{"x-api-key": testKey},
		},
		Response: &alsdata.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseCodeDetails: "via_upstream"},
	}
}

// waitForLine polls read until a line holds every part, and returns it.
func waitForLine(t *testing.T, what string, read func() string, parts ...string) string {
	t.Helper()
	var found string
	poll.Until(t, 10*time.Second, what, func() bool {
		for line := range strings.Lines(read()) {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

func TestAccessLogEntriesBecomeJSONLines(t *testing.T) {
	file := filepath.Join(t.TempDir(), "events.jsonl")
	e := startE2E(t, map[string]string{"PORTCULLIS_ANALYTICS": "jsonl:" + file})

	conn, err := grpc.NewClient(e.authz.app.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health, err := healthpb.NewHealthClient(conn).Check(context.Background(),
		&healthpb.HealthCheckRequest{Service: alsv3.AccessLogService_ServiceDesc.ServiceName})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("access-log service health = %v, %v; want SERVING", health, err)
	}

	stream, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&alsv3.StreamAccessLogsMessage{
		Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "sidecar~10.0.0.1~petstore-1.default"}, LogName: "portcullis"},
		LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*alsdata.HTTPAccessLogEntry{accessLogEntry()},
		}},
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("close stream: %v", err)
	}

	read := func() string { b, _ := os.ReadFile(file); return string(b) }
	line := waitForLine(t, "the access-log event in "+file, read,
		`"source":"accesslog"`, `"apiName":"petstore"`, `"applicationName":"e2e-app"`)
	// The base path comes from the catalog in force, not the entry.
	for _, want := range []string{`"apiContext":"/petstore/v1"`, `"apiResourceTemplate":"/pets"`, `"proxyResponseCode":200`, `"correlationId":"als-1"`} {
		if !strings.Contains(line, want) {
			t.Errorf("event lacks %s: %s", want, line)
		}
	}
	if strings.Contains(read(), testKey) {
		t.Errorf("the API key reached the analytics file: %s", read())
	}
}

func TestDecisionEventsWhenEnabled(t *testing.T) {
	tests := []struct {
		name      string
		decisions string
		want      bool
	}{
		{"off by default, so an access log does not count requests twice", "", false},
		{"on, an allowed check is one event", "true", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"PORTCULLIS_ANALYTICS": "jsonl:-"}
			if tt.decisions != "" {
				env["PORTCULLIS_ANALYTICS_DECISIONS"] = tt.decisions
			}
			e := startE2E(t, env)
			wantAllowed(t, e.check(t, checkReq("GET", "/petstore/v1/pets", "x-api-key: "+testKey)))
			if !tt.want {
				// Nothing to poll for in an absence; closing the app flushes
				// the queue, so stop it and then look.
				e.authz.stop(t)
				if out := e.authz.stdout.String(); strings.Contains(out, `"source":"decision"`) {
					t.Fatalf("decision events off, yet: %s", out)
				}
				return
			}
			waitForLine(t, "the decision event on stdout", e.authz.stdout.String,
				`"source":"decision"`, `"apiName":"petstore"`, `"applicationName":"e2e-app"`, `"correlationId":"e2e-1"`)
			if out := e.authz.stdout.String(); strings.Contains(out, testKey) {
				t.Errorf("the API key reached the analytics output: %s", out)
			}
		})
	}
}
