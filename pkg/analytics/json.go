package analytics

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e as one JSON object, WSO2 field names, without a
// trailing newline. A zero or empty field is left out: absent means
// unknown or not applicable. Latencies are milliseconds with microsecond
// precision, the timestamp RFC 3339 in UTC.
//
// It is hand-written rather than encoding/json so that the JSON-lines sink
// writes an event without reflection or allocation; FuzzAppendJSON holds
// it to producing valid JSON that encoding/json reads back.
func AppendJSON(b []byte, e *Event) []byte {
	b = append(b, `{"source":`...)
	b = appendString(b, e.Source.String())
	if !e.Timestamp.IsZero() {
		b = append(b, `,"timestamp":"`...)
		b = e.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = appendField(b, "correlationId", e.CorrelationID)
	b = appendField(b, "apiName", e.APIName)
	b = appendField(b, "apiVersion", e.APIVersion)
	b = appendField(b, "apiContext", e.APIContext)
	b = appendField(b, "apiMethod", e.APIMethod)
	b = appendField(b, "apiResourceTemplate", e.APIResourceTemplate)
	b = appendField(b, "applicationId", e.ApplicationID)
	b = appendField(b, "applicationName", e.ApplicationName)
	b = appendField(b, "applicationOwner", e.ApplicationOwner)
	b = appendField(b, "keyType", e.KeyType)
	b = appendField(b, "userName", e.UserName)
	b = appendInt(b, "proxyResponseCode", int64(e.ProxyResponseCode))
	b = appendInt(b, "targetResponseCode", int64(e.TargetResponseCode))
	b = appendMillis(b, "responseLatency", e.ResponseLatency)
	b = appendMillis(b, "backendLatency", e.BackendLatency)
	b = appendMillis(b, "requestMediationLatency", e.RequestMediationLatency)
	b = appendMillis(b, "authzLatency", e.AuthzLatency)
	b = appendUint(b, "requestBytes", e.RequestBytes)
	b = appendUint(b, "responseBytes", e.ResponseBytes)
	if e.UserIP.IsValid() {
		b = append(b, `,"userIp":"`...)
		b = e.UserIP.AppendTo(b)
		b = append(b, '"')
	}
	b = appendField(b, "userAgent", e.UserAgent)
	b = appendField(b, "serverAddress", e.ServerAddress)
	b = appendField(b, "proxyNode", e.ProxyNode)
	if e.ErrorType != ErrorNone {
		b = appendField(b, "errorType", e.ErrorType.String())
	}
	if e.ErrorSubtype != ThrottleNone {
		b = appendField(b, "errorSubtype", e.ErrorSubtype.String())
	}
	b = appendField(b, "errorCode", e.ErrorCode)
	b = appendField(b, "throttledPolicy", e.ThrottledPolicy)
	b = appendField(b, "throttledLimit", e.ThrottledLimit)
	return append(b, '}')
}

// MarshalJSON is AppendJSON, so that encoding/json and AppendJSON agree.
func (e Event) MarshalJSON() ([]byte, error) {
	return AppendJSON(make([]byte, 0, 512), &e), nil
}

func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendInt(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func appendUint(b []byte, name string, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendUint(b, v, 10)
}

func appendMillis(b []byte, name string, d time.Duration) []byte {
	if d <= 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendFloat(b, millis(d), 'f', -1, 64)
}

// millis is d in milliseconds, rounded to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Control characters, quotes and
// backslashes are escaped; invalid UTF-8 becomes U+FFFD, as encoding/json
// does; U+2028 and U+2029 are escaped so the line stays one line in
// JavaScript too.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
