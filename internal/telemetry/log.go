package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/config"
)

// NewLogger returns a logger writing cfg.Format (JSON unless "text") to w.
// When level is not nil it is set from cfg and the logger follows it, so a
// config reload can change verbosity with level.Set; nil fixes the level.
//
// Attributes whose key names a credential (authorization, token, password,
// api_key and the like) are redacted, as a last line of defence: the code
// should never log them in the first place.
func NewLogger(w io.Writer, cfg config.Log, level *slog.LevelVar) (*slog.Logger, error) {
	var leveler slog.Leveler = cfg.SlogLevel()
	if level != nil {
		level.Set(cfg.SlogLevel())
		leveler = level
	}
	opts := &slog.HandlerOptions{Level: leveler, ReplaceAttr: redact}
	switch cfg.Format {
	case config.LogJSON, "":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case config.LogText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("new logger: unknown format %q", cfg.Format)
	}
}

// Redacted replaces the value of an attribute that names a credential.
const Redacted = "[REDACTED]"

// secretKeys are attribute keys, lower-cased with '-' as '_', whose values
// are never written.
var secretKeys = map[string]bool{
	"authorization": true, "proxy_authorization": true, "cookie": true, "set_cookie": true,
	"token": true, "access_token": true, "refresh_token": true, "id_token": true, "bearer": true,
	"password": true, "passwd": true, "secret": true, "client_secret": true,
	"api_key": true, "apikey": true, "x_api_key": true, "private_key": true,
}

func redact(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindGroup {
		return a
	}
	if secretKeys[strings.ReplaceAll(strings.ToLower(a.Key), "-", "_")] {
		return slog.String(a.Key, Redacted)
	}
	return a
}
