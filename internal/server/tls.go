package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/watch"
)

// certReloader serves the TLS material in cfg's files and swaps in new
// material when the files change (cert-manager rotation, a Secret update),
// so certificates renew without a restart. A handshake always sees one
// consistent certificate, key and client CA set.
type certReloader struct {
	cfg config.TLS
	log *slog.Logger
	cur atomic.Pointer[tls.Config]
	w   *watch.Watcher
}

// newCertReloader loads the files once (an error here stops start-up) and
// starts watching them.
func newCertReloader(cfg config.TLS, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{cfg: cfg, log: log}
	paths := []string{cfg.CertFile, cfg.KeyFile}
	if cfg.ClientCAFile != "" {
		paths = append(paths, cfg.ClientCAFile)
	}
	w, err := watch.New(paths, watch.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("watch TLS files: %w", err)
	}
	c.w = w
	tc, err := loadTLS(cfg)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	c.cur.Store(tc)
	return c, nil
}

// serverConfig is the listener's configuration; each handshake takes the
// current material.
func (c *certReloader) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.cur.Load(), nil
		},
	}
}

// run reloads on change until ctx is done; a bad reload keeps the old
// material and says why.
func (c *certReloader) run(ctx context.Context) {
	_ = c.w.Run(ctx, func() {
		tc, err := loadTLS(c.cfg)
		if err != nil {
			c.log.Error("TLS reload failed; keeping the current certificate", slog.Any("error", err))
			return
		}
		c.cur.Store(tc)
		c.log.Info("TLS certificate reloaded", slog.String("cert_file", c.cfg.CertFile))
	})
}

func (c *certReloader) close() { _ = c.w.Close() }

// loadTLS reads the certificate, key and optional client CA bundle.
func loadTLS(cfg config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair %s, %s: %w", cfg.CertFile, cfg.KeyFile, err)
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
		Certificates: []tls.Certificate{cert},
	}
	if cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA file %s: %w", cfg.ClientCAFile, errors.New("no PEM certificates found"))
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
