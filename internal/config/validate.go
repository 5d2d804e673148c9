package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Validator is implemented by each part of a config. Validate checks the
// part's own fields and names them in its errors by their YAML keys; it
// need not check nested parts, which Load validates separately and prefixes
// with their path, so an error reads "server.tls: keyFile is required when
// certFile is set".
type Validator interface {
	Validate() error
}

var validatorType = reflect.TypeFor[Validator]()

// validate calls Validate on cfg (a pointer to the config struct) and on
// every nested part that implements Validator, and joins all the errors so
// an operator sees every problem at once.
func validate(cfg any) error {
	return validateValue(reflect.ValueOf(cfg), "")
}

func validateValue(v reflect.Value, path string) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	var errs []error
	// A part may implement Validator on the value or the pointer.
	var val Validator
	if v.CanAddr() && v.Addr().Type().Implements(validatorType) {
		val = v.Addr().Interface().(Validator)
	} else if v.Type().Implements(validatorType) {
		val = v.Interface().(Validator)
	}
	if val != nil {
		if err := val.Validate(); err != nil {
			errs = append(errs, prefixEach(path, err))
		}
	}
	if v.Kind() == reflect.Struct {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			if fv.Kind() != reflect.Struct && (fv.Kind() != reflect.Pointer || fv.Type().Elem().Kind() != reflect.Struct) {
				continue
			}
			sub := path
			if !isInline(f) {
				sub = joinPath(path, yamlKey(f))
			}
			if err := validateValue(fv, sub); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// prefixEach puts path in front of err, or of each error err joins, so
// every line of the final message says which part it is about.
func prefixEach(path string, err error) error {
	if path == "" {
		return err
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, 0, len(errs))
		for _, e := range errs {
			out = append(out, prefixEach(path, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// yamlKey is the key a field has in the YAML file.
func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" || name == "-" {
		return strings.ToLower(f.Name)
	}
	return name
}

// isInline reports whether the field's keys sit in its parent's mapping.
func isInline(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	for o := range strings.SplitSeq(opts, ",") {
		if o == "inline" {
			return true
		}
	}
	return false
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}
