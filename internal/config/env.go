package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// applyEnv sets every field of *cfg tagged `env:"NAME"` whose variable
// lookup finds, walking nested structs and pointers to structs (allocated
// only when a variable inside them is set). Supported field types: string,
// bool, signed and unsigned integers, floats, time.Duration, []string
// (comma-separated, blanks trimmed, empty items dropped) and anything
// implementing encoding.TextUnmarshaler.
func applyEnv(cfg any, lookup func(string) (string, bool)) error {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("apply environment: config must be a pointer to a struct, not %T", cfg)
	}
	_, err := envStruct(v.Elem(), lookup)
	return err
}

// envStruct applies lookup to the struct v and reports whether it set
// anything.
func envStruct(v reflect.Value, lookup func(string) (string, bool)) (bool, error) {
	var set bool
	var errs []error
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		name, tagged := f.Tag.Lookup("env")
		if tagged && name != "" && name != "-" {
			raw, ok := lookup(name)
			if !ok {
				continue
			}
			if err := setFromString(fv, raw); err != nil {
				errs = append(errs, fmt.Errorf("environment variable %s (field %s): %w", name, f.Name, err))
				continue
			}
			set = true
			continue
		}
		switch {
		case fv.Kind() == reflect.Struct && !isLeaf(fv.Type()):
			s, err := envStruct(fv, lookup)
			set = set || s
			if err != nil {
				errs = append(errs, err)
			}
		case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct && !isLeaf(fv.Type()):
			target := fv
			if fv.IsNil() {
				target = reflect.New(fv.Type().Elem())
			}
			s, err := envStruct(target.Elem(), lookup)
			if err != nil {
				errs = append(errs, err)
			}
			if s && fv.IsNil() {
				fv.Set(target)
			}
			set = set || s
		}
	}
	return set, errors.Join(errs...)
}

// isLeaf reports whether t is set from one string rather than walked.
func isLeaf(t reflect.Type) bool {
	return t.Implements(textUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// setFromString parses raw into v according to v's type.
func setFromString(v reflect.Value, raw string) error {
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
			return u.UnmarshalText([]byte(raw))
		}
	}
	if v.Kind() == reflect.Pointer {
		p := reflect.New(v.Type().Elem())
		if err := setFromString(p.Elem(), raw); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	s := strings.TrimSpace(raw)
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("want a duration such as 30s")
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false: %w", numErr(err))
		}
		v.SetBool(b)
	case v.CanInt():
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want an integer: %w", numErr(err))
		}
		v.SetInt(n)
	case v.CanUint():
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a non-negative integer: %w", numErr(err))
		}
		v.SetUint(n)
	case v.CanFloat():
		n, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a number: %w", numErr(err))
		}
		v.SetFloat(n)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		items := []string{}
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		sl := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			sl.Index(i).SetString(item)
		}
		v.Set(sl)
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}

// numErr drops the offending value from a strconv error: the variable is
// named instead, and values are kept out of logs in case one is a secret
// put in the wrong variable.
func numErr(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}
