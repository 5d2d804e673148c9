package rls

import "fmt"

// FailureMode says how the service answers when the store cannot be reached
// within the deadline. Envoy's filter has its own failure_mode_deny for
// errors, so Unavailable hands that choice to the proxy.
type FailureMode uint8

const (
	// FailOpen answers OK and says so in the dynamic metadata.
	FailOpen FailureMode = iota
	// FailClosed answers OVER_LIMIT.
	FailClosed
	// FailUnavailable answers gRPC UNAVAILABLE, so Envoy's
	// failure_mode_deny decides.
	FailUnavailable
)

var failureModeNames = [...]string{"open", "closed", "unavailable"}

func (m FailureMode) String() string {
	if int(m) < len(failureModeNames) {
		return failureModeNames[m]
	}
	return fmt.Sprintf("FailureMode(%d)", m)
}

// ParseFailureMode reads "open", "closed" or "unavailable".
func ParseFailureMode(s string) (FailureMode, error) {
	for i, n := range failureModeNames {
		if n == s {
			return FailureMode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown failure mode %q (want open, closed or unavailable)", s)
}
