package manifests

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var envName = regexp.MustCompile(`PORTCULLIS_[A-Z0-9_]+`)

// Every PORTCULLIS_* variable the manifests and the README mention,
// commented-out examples included, is one the binaries read: an env
// struct tag in cmd/ or internal/.
func TestDocumentedEnvironmentVariablesExist(t *testing.T) {
	known := map[string]bool{}
	for _, root := range []string{"../cmd", "../internal"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range regexp.MustCompile(`env:"(PORTCULLIS_[A-Z0-9_]+)"`).FindAllStringSubmatch(string(data), -1) {
				known[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(known) == 0 {
		t.Fatal("found no env tags in cmd/ or internal/")
	}
	var mentioned int
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, name := range envName.FindAllString(string(data), -1) {
			mentioned++
			if !known[name] {
				t.Errorf("%s mentions %s, which no binary reads", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mentioned == 0 {
		t.Error("the manifests mention no PORTCULLIS_* variable; the Redis URL's at least is expected")
	}
}

// The image the Deployments run is the one the Dockerfile builds: each
// container command is a binary the Dockerfile compiles from cmd/ and
// copies to that path.
func TestDockerfileBuildsTheCommandsTheDeploymentsRun(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for bin, c := range deployments(t, render(t, "base")) {
		cmd := c.c.Command[0]
		if !strings.Contains(df, "./cmd/"+bin) {
			t.Errorf("the Dockerfile does not build ./cmd/%s", bin)
		}
		if !strings.Contains(df, "/out/"+bin) || !strings.Contains(df, filepath.Dir(cmd)+"/") {
			t.Errorf("the Dockerfile does not install %s at %s", bin, cmd)
		}
		if c.c.Image != "ghcr.io/portcullis-dev/portcullis:latest" {
			t.Errorf("%s runs image %s, not the one the kustomization's images entry rewrites", bin, c.c.Image)
		}
	}
}
