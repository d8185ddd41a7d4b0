package params

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Errors. Test with errors.Is.
var (
	// ErrInvalid: a declaration or a value breaks its declaration (type,
	// bounds, unknown name).
	ErrInvalid = errors.New("params: invalid")
	// ErrConflict: a compare-and-set ([CompareAndSet]) found the job at
	// another version than the one the change was based on.
	ErrConflict = errors.New("params: conflict")
)

// Type is a parameter's type. Values of each type are held as one Go type:
//
//	Int      int64
//	Float    float64
//	String   string
//	Bool     bool
//	Duration time.Duration
type Type uint8

// Types. The numbering is stored: never renumber.
const (
	Int      Type = 1
	Float    Type = 2
	String   Type = 3
	Bool     Type = 4
	Duration Type = 5
)

var typeNames = [...]string{Int: "int", Float: "float", String: "string", Bool: "bool", Duration: "duration"}

func (t Type) String() string {
	if t >= Int && t <= Duration {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MarshalText writes the type's name.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a type's name.
func (t *Type) UnmarshalText(b []byte) error {
	for i, n := range typeNames {
		if n != "" && n == string(b) {
			*t = Type(i)
			return nil
		}
	}
	return fmt.Errorf("%w: unknown type %q", ErrInvalid, b)
}

// Decl declares one parameter of a job.
type Decl struct {
	// Name is unique within the job: letters, digits, '_', '-', '.'; it may
	// not start with '_' (reserved for bookkeeping columns). Required.
	Name string `json:"name"`
	// Type of the values. Required.
	Type Type `json:"type"`
	// Default is the value while no version overrides it. Required, of Type
	// (any Go integer for Int, a number for Float, a time.Duration or a
	// string like "72h" for Duration).
	Default any `json:"default"`
	// Min and Max bound Int, Float and Duration values, inclusively; nil is
	// unbounded. Not allowed for String and Bool.
	Min any `json:"min,omitempty"`
	Max any `json:"max,omitempty"`
	// Description tells an operator what the parameter does and what a
	// change means. Required: operators change values by reading it.
	Description string `json:"description"`
}

// Values maps parameter names to values. In a resolved set (see [Resolve])
// each value has its declared type's Go type.
type Values map[string]any

// UnmarshalJSON reads a JSON object keeping integers exact: a number
// written without fraction or exponent that fits an int64 is an int64, any
// other number a float64. (Plain encoding/json makes every number a
// float64: an Int value above 2^53 changed on its way through Temporal's
// JSON payloads, from the submitted change to the stored version.)
func (v *Values) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return err
	}
	for k, x := range m {
		n, ok := x.(json.Number)
		if !ok {
			continue
		}
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			m[k] = i
		} else if f, err := n.Float64(); err == nil {
			m[k] = f
		} else {
			return fmt.Errorf("params: value %q: %w", k, err)
		}
	}
	*v = m
	return nil
}

// Version numbers the successive value sets of a job: 1, 2, … Version 0
// means no value was ever set: every parameter has its default.
type Version int64

// Validate reports a malformed declaration, and canonicalizes Default, Min
// and Max to the type's Go type.
func (d *Decl) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: parameter %q: %s", ErrInvalid, d.Name, fmt.Sprintf(format, args...))
	}
	if err := validName(d.Name); err != nil {
		return bad("%v", err)
	}
	if d.Type < Int || d.Type > Duration {
		return bad("unknown type %v", d.Type)
	}
	if strings.TrimSpace(d.Description) == "" {
		return bad("missing description")
	}
	if d.Default == nil {
		return bad("missing default")
	}
	var err error
	if d.Default, err = convert(d.Type, d.Default); err != nil {
		return bad("default: %v", err)
	}
	for _, b := range []*any{&d.Min, &d.Max} {
		if *b == nil {
			continue
		}
		if d.Type == String || d.Type == Bool {
			return bad("a %v parameter has no bounds", d.Type)
		}
		if *b, err = convert(d.Type, *b); err != nil {
			return bad("bound: %v", err)
		}
	}
	if d.Min != nil && d.Max != nil && compare(d.Min, d.Max) > 0 {
		return bad("min %v is above max %v", d.Min, d.Max)
	}
	if err := d.inBounds(d.Default); err != nil {
		return bad("default: %v", err)
	}
	return nil
}

// Check converts v to the declared type and checks its bounds.
func (d *Decl) Check(v any) (any, error) {
	c, err := convert(d.Type, v)
	if err == nil {
		err = d.inBounds(c)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: parameter %q: %v", ErrInvalid, d.Name, err)
	}
	return c, nil
}

func (d *Decl) inBounds(v any) error {
	if d.Min != nil && compare(v, d.Min) < 0 {
		return fmt.Errorf("%v is below the minimum %v", v, d.Min)
	}
	if d.Max != nil && compare(v, d.Max) > 0 {
		return fmt.Errorf("%v is above the maximum %v", v, d.Max)
	}
	return nil
}

func validName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("a name has 1 to 128 bytes")
	}
	if name[0] == '_' {
		return fmt.Errorf("names starting with '_' are reserved")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%q is not allowed in a name", c)
		}
	}
	return nil
}

// compare compares two canonical values of one numeric type.
func compare(a, b any) int {
	switch a := a.(type) {
	case int64:
		return cmpOrdered(a, b.(int64))
	case float64:
		return cmpOrdered(a, b.(float64))
	case time.Duration:
		return cmpOrdered(a, b.(time.Duration))
	}
	return 0
}

func cmpOrdered[T int64 | float64 | time.Duration](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// convert returns v as type t's Go type. It accepts what JSON, the event
// center and Go literals produce: any integer, integral floats for Int,
// json.Number, numeric strings, duration strings ("90m", "2160h") and
// integers (nanoseconds) for Duration.
func convert(t Type, v any) (any, error) {
	if n, ok := v.(json.Number); ok {
		v = string(n)
	}
	switch t {
	case Int:
		switch v := v.(type) {
		case int:
			return int64(v), nil
		case int8:
			return int64(v), nil
		case int16:
			return int64(v), nil
		case int32:
			return int64(v), nil
		case int64:
			return v, nil
		case uint8:
			return int64(v), nil
		case uint16:
			return int64(v), nil
		case uint32:
			return int64(v), nil
		case uint64:
			if v <= math.MaxInt64 {
				return int64(v), nil
			}
		case float64:
			if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
				return int64(v), nil
			}
		case string:
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n, nil
			}
		}
	case Float:
		switch v := v.(type) {
		case float64:
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				return v, nil
			}
		case float32:
			if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f, nil
			}
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f, nil
			}
		default:
			if n, err := convert(Int, v); err == nil {
				return float64(n.(int64)), nil
			}
		}
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Bool:
		switch v := v.(type) {
		case bool:
			return v, nil
		case string:
			if b, err := strconv.ParseBool(v); err == nil {
				return b, nil
			}
		}
	case Duration:
		switch v := v.(type) {
		case time.Duration:
			return v, nil
		case string:
			if d, err := time.ParseDuration(strings.TrimSpace(v)); err == nil {
				return d, nil
			}
		default:
			if n, err := convert(Int, v); err == nil {
				return time.Duration(n.(int64)), nil
			}
		}
	default:
		return nil, fmt.Errorf("unknown type %v", t)
	}
	return nil, fmt.Errorf("%v (%T) is not a valid %v", v, v, t)
}

// ValidateDecls validates each declaration (canonicalizing it in place)
// and reports duplicate names.
func ValidateDecls(decls []Decl) error {
	seen := map[string]bool{}
	for i := range decls {
		if err := decls[i].Validate(); err != nil {
			return err
		}
		if seen[decls[i].Name] {
			return fmt.Errorf("%w: parameter %q is declared twice", ErrInvalid, decls[i].Name)
		}
		seen[decls[i].Name] = true
	}
	return nil
}

// Resolve returns the full value set of a job: each declared parameter's
// override from values, checked against its declaration, or its default.
// Overrides of undeclared names are ignored (a newer job version may have
// dropped a parameter). decls must be valid (see ValidateDecls).
func Resolve(decls []Decl, values Values) (Values, error) {
	out := make(Values, len(decls))
	for i := range decls {
		d := &decls[i]
		v, ok := values[d.Name]
		if !ok || v == nil {
			out[d.Name] = d.Default
			continue
		}
		c, err := d.Check(v)
		if err != nil {
			return nil, err
		}
		out[d.Name] = c
	}
	return out, nil
}

// Check validates changes against decls: every name must be declared and
// every non-nil value valid. It returns the changes canonicalized.
func Check(decls []Decl, changes Values) (Values, error) {
	out := make(Values, len(changes))
	for name, v := range changes {
		i := indexOf(decls, name)
		if i < 0 {
			return nil, fmt.Errorf("%w: parameter %q is not declared", ErrInvalid, name)
		}
		if v == nil {
			out[name] = nil
			continue
		}
		c, err := decls[i].Check(v)
		if err != nil {
			return nil, err
		}
		out[name] = c
	}
	return out, nil
}

func indexOf(decls []Decl, name string) int {
	for i := range decls {
		if decls[i].Name == name {
			return i
		}
	}
	return -1
}

// Registry keeps the versions of each job's parameter values. Every method
// is safe for concurrent use.
type Registry interface {
	// Current returns the job's latest version and its overrides (values
	// that differ from the declared defaults; resolve them with [Resolve]).
	// A job without any version has Version 0 and no values; that is not an
	// error.
	Current(ctx context.Context, job string) (Version, Values, error)
	// Set makes a new version: the current overrides with changes applied
	// (a nil value removes an override, back to the default). If the job's
	// parameters are declared (see [Declarer]) the changes are checked
	// against the declarations first and nothing is stored on error. by
	// names who made the change, for the audit trail. Sets of one job are
	// serialized within a registry; across processes they must be
	// serialized by the caller (the approval workflow).
	Set(ctx context.Context, job string, changes Values, by string) (Version, error)
}

// Declarer is the optional capability of a registry to keep a job's
// declarations, so that Set can check changes and operators can read what
// each parameter means.
type Declarer interface {
	// Declare stores the job's declarations (replacing earlier ones). They
	// must be valid.
	Declare(ctx context.Context, job string, decls []Decl) error
	// Declarations returns the job's declarations; none is not an error.
	Declarations(ctx context.Context, job string) ([]Decl, error)
}

// CompareAndSet is the optional capability of a registry to make a version
// only if the job is still at the version a change was based on, so that two
// changes reviewed at once cannot silently overwrite each other (the
// approval workflow applies changes with it).
type CompareAndSet interface {
	// SetIf is Set if the job's current version is base; otherwise it stores
	// nothing and returns an error matching ErrConflict that names the
	// current version. change identifies the change (the approval
	// workflow's id) and is stored with the version: if the current version
	// is base+1 and was made by the same change, SetIf returns it without
	// storing again, so a retry after a lost reply succeeds. SetIf is atomic
	// within one registry value; processes sharing a store must serialize
	// their calls per job (the ParamChange workflow runs one apply per job
	// at a time).
	SetIf(ctx context.Context, job string, base Version, changes Values, by, change string) (Version, error)
}

// ErrNoVersion: a job has no such version (see [Versions]).
var ErrNoVersion = errors.New("params: no such version")

// Versions is the optional capability of a registry to return any version
// by number, so a backfill can pin one (`backfill start --params-version`).
type Versions interface {
	// Version returns the overrides of job's version v; version 0 has none.
	// A version the job never had is ErrNoVersion.
	Version(ctx context.Context, job string, v Version) (Values, error)
}

// PointInTime is the optional capability of a registry to answer which
// version was current at a past moment, so a backfill can use the values
// a live run used then.
type PointInTime interface {
	// AsOf returns the version current at t (Version 0 if none was set by t).
	AsOf(ctx context.Context, job string, t time.Time) (Version, Values, error)
}
