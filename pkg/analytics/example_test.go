package analytics_test

import (
	"fmt"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
)

func ExampleParseSink() {
	for _, flag := range []string{"off", "jsonl:-", "otlp-grpc:otel-collector:4317", "otlp-http:http://otel-collector:4318"} {
		spec, err := analytics.ParseSink(flag)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(spec.Kind == analytics.SinkOff, spec)
	}
	// Output:
	// true off
	// false jsonl:-
	// false otlp-grpc:otel-collector:4317
	// false otlp-http:http://otel-collector:4318/v1/logs
}

func ExampleAppendJSON() {
	e := analytics.Event{
		Source: analytics.SourceAccessLog, APIName: "petstore", APIVersion: "v1", APIMethod: "GET",
		APIResourceTemplate: "/pets/{id}", ProxyResponseCode: 429,
		ErrorType: analytics.ErrorThrottled, ErrorSubtype: analytics.ThrottleBurst, ErrorCode: analytics.CodeThrottledBurst,
	}
	fmt.Println(string(analytics.AppendJSON(nil, &e)))
	// Output:
	// {"source":"accesslog","apiName":"petstore","apiVersion":"v1","apiMethod":"GET","apiResourceTemplate":"/pets/{id}","proxyResponseCode":429,"errorType":"THROTTLED","errorSubtype":"BURST","errorCode":"throttled_burst"}
}
