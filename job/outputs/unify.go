package outputs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
)

// UnifyParquet makes the Parquet objects objs of dst (written by
// ParquetOutput, e.g. the segments of one backfill) read as one table: a
// feature column that an object lacks (its records had no such feature)
// or holds only nulls of another type (typed as text: a null has no type)
// gets, in that object, the type the feature has where it has values, and
// the object is rewritten. It reads the footer of every object and
// rewrites only those; it returns their names.
//
// A feature whose values have different types in different objects (an
// int64 in one, a double in another) is left as it is; so is every column
// of an object that is not a flat ParquetOutput schema.
func UnifyParquet(ctx context.Context, dst Destination, objs []Object) ([]string, error) {
	type shape struct {
		fields  map[string]parquet.Node
		allNull map[string]bool
	}
	shapes := make([]shape, len(objs))
	for i, o := range objs {
		f, closer, err := openParquet(ctx, dst, o, false)
		if err != nil {
			return nil, err
		}
		sh := shape{fields: map[string]parquet.Node{}, allNull: map[string]bool{}}
		for c, fd := range f.Schema().Fields() {
			sh.fields[fd.Name()] = fd
			sh.allNull[fd.Name()] = columnAllNull(f, c)
		}
		closer.Close()
		shapes[i] = sh
	}
	// The type of each feature column: the one of the objects where it has
	// values, or, if it has none anywhere, the one it has where present.
	target := map[string]parquet.Node{}
	mixed := map[string]bool{}
	for _, sh := range shapes {
		for name, n := range sh.fields {
			if slices.Contains(parquetMeta, name) || sh.allNull[name] {
				continue
			}
			switch t, ok := target[name]; {
			case !ok:
				target[name] = n
			case !parquet.EqualNodes(t, n):
				mixed[name] = true
			}
		}
	}
	for _, sh := range shapes {
		for name, n := range sh.fields {
			if _, ok := target[name]; !ok && !slices.Contains(parquetMeta, name) {
				target[name] = n
			}
		}
	}
	var rewritten []string
	for i, sh := range shapes {
		change := map[string]parquet.Node{}
		for name, t := range target {
			n, ok := sh.fields[name]
			if mixed[name] || (ok && (parquet.EqualNodes(n, t) || !sh.allNull[name])) {
				continue
			}
			change[name] = t
		}
		if len(change) == 0 {
			continue
		}
		if err := rewriteParquet(ctx, dst, objs[i], change); err != nil {
			return rewritten, fmt.Errorf("outputs: parquet %s: %w", objs[i].Name, err)
		}
		rewritten = append(rewritten, objs[i].Name)
	}
	return rewritten, nil
}

// columnAllNull reports whether leaf column c of f holds only nulls, from
// its column chunks' statistics (false when they do not say).
func columnAllNull(f *parquet.File, c int) bool {
	for _, rg := range f.Metadata().RowGroups {
		if c >= len(rg.Columns) {
			return false
		}
		md := rg.Columns[c].MetaData
		if md.Statistics.NullCount != md.NumValues {
			return false
		}
	}
	return true
}

// rewriteParquet rewrites the object o of dst with the columns of change
// (each null in every row of o, or missing from it) typed as change says.
func rewriteParquet(ctx context.Context, dst Destination, o Object, change map[string]parquet.Node) error {
	f, closer, err := openParquet(ctx, dst, o, true)
	if err != nil {
		return err
	}
	defer closer.Close()
	old := map[string]int{}
	group := parquet.Group{}
	for c, fd := range f.Schema().Fields() {
		old[fd.Name()] = c
		group[fd.Name()] = fd
	}
	for name, n := range change {
		group[name] = n
	}
	schema := parquet.NewSchema("record", group)
	from := make([]int, len(schema.Fields())) // new column -> old column, or -1
	for c, fd := range schema.Fields() {
		from[c] = -1
		if oc, ok := old[fd.Name()]; ok {
			if _, changed := change[fd.Name()]; !changed {
				from[c] = oc
			}
		}
	}
	tmp, drop, err := tempFile("tidemark-parquet-*")
	if err != nil {
		return err
	}
	defer drop()
	pw := parquet.NewWriter(tmp, schema)
	r := parquet.NewReader(f)
	defer r.Close()
	in := make([]parquet.Row, 512)
	out := make([]parquet.Row, len(in))
	for {
		n, err := r.ReadRows(in)
		for k := range n {
			row := out[k][:0]
			for c, oc := range from {
				if oc < 0 {
					row = append(row, parquet.NullValue().Level(0, 0, c))
					continue
				}
				v := in[k][oc]
				row = append(row, v.Level(v.RepetitionLevel(), v.DefinitionLevel(), c))
			}
			out[k] = row
		}
		if _, werr := pw.WriteRows(out[:n]); werr != nil {
			return werr
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := pw.Close(); err != nil {
		return err
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return dst.Put(ctx, o.Name, tmp, size)
}

// openParquet opens the Parquet object o of dst: its footer only, unless
// whole (then the object is read in one request, to read its rows).
func openParquet(ctx context.Context, dst Destination, o Object, whole bool) (*parquet.File, io.Closer, error) {
	var r io.ReaderAt
	var closer io.Closer = noClose{}
	size := o.Size
	switch d := dst.(type) {
	case Dir:
		f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(o.Name)))
		if err != nil {
			return nil, nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		r, closer, size = f, f, fi.Size()
	case S3:
		obj := s3Object{ctx: ctx, d: d, key: d.Prefix + o.Name}
		if !whole {
			r = obj
			break
		}
		b, err := obj.read("")
		if err != nil {
			return nil, nil, err
		}
		r, size = bytes.NewReader(b), int64(len(b))
	default:
		return nil, nil, fmt.Errorf("outputs: cannot read objects of %s", dst)
	}
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		closer.Close()
		return nil, nil, fmt.Errorf("outputs: parquet %s: %w", o.Name, err)
	}
	return f, closer, nil
}

// s3Object reads an S3 object by ranged GETs.
type s3Object struct {
	ctx context.Context
	d   S3
	key string
}

func (o s3Object) read(rng string) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(o.d.Bucket), Key: aws.String(o.key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := o.d.Client.GetObject(o.ctx, in)
	if err != nil {
		return nil, fmt.Errorf("outputs: s3 get %s/%s: %w", o.d.Bucket, o.key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// ReadAt implements io.ReaderAt.
func (o s3Object) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := o.read(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))
	n := copy(p, b)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

type noClose struct{}

func (noClose) Close() error { return nil }
