package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/bench/loadgen"
	"google.golang.org/protobuf/proto"
)

func TestServesEveryAddressUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	addrs := make(chan []string, 1)
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(runCtx, []string{"-addr", "127.0.0.1:0, 127.0.0.1:0"}, &stderr, func(a []string) { addrs <- a })
	}()
	var got []string
	select {
	case got = <-addrs:
	case err := <-done:
		t.Fatalf("run returned before serving: %v\n%s", err, stderr.String())
	case <-ctx.Done():
		t.Fatal("servers not ready in time")
	}
	if len(got) != 2 || got[0] == got[1] {
		t.Fatalf("serving on %v, want two distinct addresses", got)
	}
	for _, addr := range got {
		svc := loadgen.RateLimitService()
		res, err := loadgen.Run(ctx, loadgen.Target{
			Name: addr, Addr: addr, Requests: 50,
			Messages:  []proto.Message{loadgen.ExampleRateLimitOne()},
			NewCaller: svc.NewCaller, Classify: svc.Classify,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Classes["OK"] != 50 {
			t.Errorf("%s answered %v, want 50 OK", addr, res.Classes)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run after cancel = %v, want nil", err)
	}
	if !strings.Contains(stderr.String(), `"msg":"stopping"`) {
		t.Errorf("log lacks the stopping line:\n%s", stderr.String())
	}
}

func TestRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown flag", []string{"-port", "1"}, "flag provided but not defined"},
		{"a stray argument", []string{"extra"}, "unexpected arguments"},
		{"no address", []string{"-addr", " , "}, "no address given"},
		{"a negative grace", []string{"-shutdown-timeout", "-1s"}, "must not be negative"},
		{"an address that cannot be listened on", []string{"-addr", "127.0.0.1:0,256.0.0.1:1"}, "listen on 256.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stderr, func([]string) { t.Error("ready called for a bad configuration") })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}
