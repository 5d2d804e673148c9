package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Source says where a binary's configuration comes from, in the order the
// layers apply. T is the binary's config struct: YAML keys come from its
// `yaml` tags, environment variable names from its `env` tags.
type Source[T any] struct {
	// File is the YAML file to read; empty reads none, so a binary can
	// start without one.
	File string

	// Lookup reads an environment variable; os.LookupEnv in production, a
	// map in tests. Nil applies no environment overrides.
	Lookup func(name string) (value string, ok bool)

	// Defaults returns a fresh default config. It is a function, not a
	// value, so a reload never decodes into maps or slices shared with an
	// earlier load. Nil starts from T's zero value.
	Defaults func() T

	// Override applies last, before validation: the command-line flags the
	// operator set explicitly, which win over the file and the environment.
	Override func(*T)
}

// Load builds the configuration from src and validates it. Every error
// names where the problem is: the file and line for YAML, the variable for
// the environment, the field path for validation.
func (src Source[T]) Load() (T, error) {
	var cfg T
	if src.Defaults != nil {
		cfg = src.Defaults()
	}
	if src.File != "" {
		data, err := os.ReadFile(src.File)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if err := decode(src.File, data, &cfg); err != nil {
			return cfg, err
		}
	}
	if src.Lookup != nil {
		if err := applyEnv(&cfg, src.Lookup); err != nil {
			return cfg, err
		}
	}
	if src.Override != nil {
		src.Override(&cfg)
	}
	if err := validate(&cfg); err != nil {
		return cfg, fmt.Errorf("invalid config: %w", err)
	}
	return cfg, nil
}

// FileError is a problem in a config file, located by line when the YAML
// decoder gave one, so that operators and logs can point at it.
type FileError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ": " + e.Msg
}

// lineRE finds the "line N: " yaml.v3 puts in syntax and type errors.
var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func fileError(file, msg string) *FileError {
	e := &FileError{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = msg[len(m[0]):]
	}
	return e
}

// decode overlays the single YAML document in data onto out, rejecting
// fields out does not have. An empty file changes nothing.
func decode(file string, data []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(out)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			errs := make([]error, 0, len(te.Errors))
			for _, msg := range te.Errors {
				errs = append(errs, fileError(file, msg))
			}
			return errors.Join(errs...)
		}
		return fileError(file, err.Error())
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return fileError(file, err.Error())
		}
		return &FileError{File: file, Line: line, Msg: "a config file holds one YAML document, found another"}
	}
	return nil
}
