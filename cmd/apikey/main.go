// Command apikey generates an API key for an application: it prints the key
// once, for its owner, and the apiKeys catalog entry that holds only the
// key's SHA-256, for the catalog.
//
//	apikey -app NAME -id KEYID [-type PRODUCTION|SANDBOX] [-expires RFC3339]
//	       [-cidr a,b] [-referrer p,q] [-env live|test]
//
// Portcullis never stores the key: whoever runs this command hands it to
// the application's owner and adds the entry to the Application's
// spec.apiKeys. A lost key cannot be recovered, only replaced. The key's
// format is pkg/apikey's (pcl_live_… or pcl_test_…).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/pkg/apikey"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apikey:", err)
		os.Exit(1)
	}
}

// options are the command's flags, parsed.
type options struct {
	app       string
	id        string
	keyType   string
	expires   string
	cidrs     []string
	referrers []string
	env       string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return generate(ctx, opts, rand.Reader, time.Now(), stdout)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("apikey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: apikey -app NAME -id KEYID [-type PRODUCTION|SANDBOX] [-expires RFC3339] [-cidr a,b] [-referrer p,q] [-env live|test]")
		fmt.Fprintln(fs.Output(), "\nGenerates an API key, prints it once, and prints the apiKeys catalog entry holding its SHA-256.")
		fs.PrintDefaults()
	}
	var o options
	var cidrs, referrers string
	fs.StringVar(&o.app, "app", "", "`name` of the Application the key belongs to (required)")
	fs.StringVar(&o.id, "id", "", "key `id`, unique within the application and safe to log (required)")
	fs.StringVar(&o.keyType, "type", "PRODUCTION", "key `type`: PRODUCTION or SANDBOX")
	fs.StringVar(&o.expires, "expires", "", "expiry as an RFC 3339 `time` such as 2027-06-30T00:00:00Z (default: never)")
	fs.StringVar(&cidrs, "cidr", "", "comma-separated `CIDRs` or addresses the key may be used from (default: any)")
	fs.StringVar(&referrers, "referrer", "", "comma-separated Referer `patterns`, a trailing * a prefix (default: any)")
	fs.StringVar(&o.env, "env", "", "environment label in the key, `live` or test (default: live for PRODUCTION, test for SANDBOX)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.cidrs, o.referrers = splitList(cidrs), splitList(referrers)
	switch {
	case o.app == "":
		return options{}, errors.New("-app is required")
	case o.id == "":
		return options{}, errors.New("-id is required")
	}
	if o.env == "" {
		o.env = apikey.EnvLive
		if o.keyType == catalog.KeyTypeSandbox.String() {
			o.env = apikey.EnvTest
		}
	}
	return o, nil
}

// splitList splits a comma-separated flag, trimming spaces; an empty flag
// is no list.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// generate makes the key, checks that its catalog entry is one the catalog
// accepts, and prints both.
func generate(ctx context.Context, o options, rnd io.Reader, now time.Time, stdout io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.expires != "" {
		t, err := time.Parse(time.RFC3339, o.expires)
		if err != nil {
			return fmt.Errorf("-expires: want an RFC 3339 time such as 2027-06-30T00:00:00Z: %w", err)
		}
		if !t.After(now) {
			return fmt.Errorf("-expires: %s is not in the future", o.expires)
		}
	}
	key, err := apikey.Generate(rnd, o.env)
	if err != nil {
		return err
	}
	sum := key.Hash()
	entry := catalog.APIKey{
		ID:               o.id,
		SHA256:           hex.EncodeToString(sum[:]),
		KeyType:          o.keyType,
		Expires:          o.expires,
		AllowedCIDRs:     o.cidrs,
		AllowedReferrers: o.referrers,
	}
	entryYAML, err := marshalEntry(entry)
	if err != nil {
		return err
	}
	if err := validateEntry(o.app, entryYAML); err != nil {
		return err
	}

	var out bytes.Buffer
	fmt.Fprintf(&out, "API key %q for Application %q (%s):\n\n", o.id, o.app, o.keyType)
	fmt.Fprintf(&out, "    %s\n\n", key.Plaintext())
	fmt.Fprintf(&out, "This is the only time the key is shown: Portcullis stores only its SHA-256.\n")
	fmt.Fprintf(&out, "Give it to the application's owner now. A lost key cannot be recovered, only replaced.\n\n")
	fmt.Fprintf(&out, "%s Application %q:\n", entryMarker, o.app)
	out.Write(entryYAML)
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// entryMarker starts the line before the catalog entry.
const entryMarker = "# Add this entry to spec.apiKeys of"

func marshalEntry(e catalog.APIKey) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode([]catalog.APIKey{e}); err != nil {
		return nil, fmt.Errorf("encode catalog entry: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode catalog entry: %w", err)
	}
	return b.Bytes(), nil
}

// validateEntry builds a one-Application catalog holding the entry, so
// that a bad key type, CIDR or referrer is reported now, by the catalog's
// own rules, rather than when the catalog is next loaded.
func validateEntry(app string, entryYAML []byte) error {
	doc, err := applicationDocument(app, entryYAML)
	if err != nil {
		return err
	}
	docs, err := catalog.Decode("generated entry", doc)
	if err == nil {
		_, err = catalog.Build(docs)
	}
	if err != nil {
		return fmt.Errorf("the catalog would refuse this key: %w", err)
	}
	return nil
}

// applicationDocument wraps an apiKeys entry in an Application document.
func applicationDocument(app string, entryYAML []byte) ([]byte, error) {
	name, err := yaml.Marshal(app)
	if err != nil {
		return nil, fmt.Errorf("encode application name: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nmetadata:\n  name: %s\nspec:\n  apiKeys:\n", catalog.APIVersion, catalog.KindApplication, bytes.TrimSpace(name))
	for line := range strings.Lines(string(entryYAML)) {
		b.WriteString("    ")
		b.WriteString(line)
	}
	return b.Bytes(), nil
}
