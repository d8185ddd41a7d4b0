package outputs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
)

// openParquet opens the Parquet object at path, for the test's duration.
func openParquet(t *testing.T, path string) *parquet.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

// readColumns reads a Parquet object into its column names (in schema
// order) and one map per row from column to value (nil for null).
func readColumns(t *testing.T, path string) ([]string, []map[string]any) {
	t.Helper()
	pf := openParquet(t, path)
	var cols []string
	for _, fd := range pf.Schema().Fields() {
		cols = append(cols, fd.Name())
	}
	r := parquet.NewReader(pf)
	defer r.Close()
	var out []map[string]any
	rows := make([]parquet.Row, 1)
	for {
		n, err := r.ReadRows(rows)
		if n == 0 {
			if err != nil {
				break
			}
			continue
		}
		m := map[string]any{}
		for _, v := range rows[0] {
			if v.IsNull() {
				m[cols[v.Column()]] = nil
				continue
			}
			switch v.Kind() {
			case parquet.Int64:
				m[cols[v.Column()]] = v.Int64()
			default:
				m[cols[v.Column()]] = v.String()
			}
		}
		out = append(out, m)
	}
	return cols, out
}

// putParquet writes recs as the Parquet object name in dst, with the
// sample columns sample.
func putParquet(t *testing.T, dst outputs.Destination, name string, recs []job.Record, sample ...string) {
	t.Helper()
	ctx := context.Background()
	o, err := outputs.Parquet(dst, name, sample...)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// Fields whose column names would collide — a feature named like a
// metadata column and one named with the prefix that renaming gives it, a
// sample column and a feature of the same name — each keep a column of
// their own, so no value is lost.
func TestParquetColumnsNeverCollide(t *testing.T) {
	dir := t.TempDir()
	rec := records(t, 1)[0]
	rec.Features = eventcenter.Row{
		"id": int64(1), "feature_id": int64(2), // a metadata name, and its renamed form
		"label": int64(3), "sample_id": int64(4), // a sample column's name, and a renamed one's
		outputs.SampleColumn("feature_label"): "fl", // a sample column named like a renamed feature, among the features (a record read back from JSON)
	}
	rec.Sample = []job.Field{
		{Name: outputs.SampleColumn("label"), Value: "yes"}, // a feature's name
		{Name: outputs.SampleColumn("id"), Value: "sid"},    // a metadata column's
	}
	putParquet(t, outputs.Dir(dir), "c/x.parquet", []job.Record{rec}, "label", "id", "feature_label")
	cols, rows := readColumns(t, filepath.Join(dir, "c", "x.parquet"))
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	// 10 metadata columns and one per field.
	if len(cols) != 10+len(rec.Features)+len(rec.Sample) {
		t.Fatalf("columns %q: want 10 + %d", cols, len(rec.Features)+len(rec.Sample))
	}
	var values []string
	for _, c := range cols {
		if v := rows[0][c]; c != "id" && c != "entity" && c != "job" && c != "job_version" && c != "trigger_source" && c != "trigger_key" && c != "time" &&
			c != "param_version" && c != "trigger_log" && c != "trigger_offset" {
			values = append(values, fmt.Sprint(v))
		}
	}
	slices.Sort(values)
	if want := []string{"1", "2", "3", "4", "fl", "sid", "yes"}; !slices.Equal(values, want) {
		t.Fatalf("field values %q (columns %q): want %q", values, cols, want)
	}
	if rows[0]["id"] != rec.ID {
		t.Fatalf("column id holds %v, want the record ID %s", rows[0]["id"], rec.ID)
	}
}

// A column's name depends on its field alone, not on the other fields of
// the object: a training set's sample column has the same name in a
// segment whose rows have a feature of that name and in one whose rows
// have no state (no features), so the segments of one backfill read as
// one table.
func TestParquetColumnsSameInEverySegment(t *testing.T) {
	dir := t.TempDir()
	recs := records(t, 2)
	recs[0].Features = eventcenter.Row{"label": int64(7)}
	recs[0].Sample = []job.Field{{Name: outputs.SampleColumn("label"), Value: "yes"}}
	recs[1].Features = nil // a row without state
	recs[1].Sample = []job.Field{{Name: outputs.SampleColumn("label"), Value: "no"}}
	column := map[string]string{} // object -> the column holding the sample's label
	for i, r := range recs {
		name := fmt.Sprintf("s/chunk-%d.parquet", i)
		putParquet(t, outputs.Dir(dir), name, []job.Record{r}, "label")
		_, rows := readColumns(t, filepath.Join(dir, filepath.FromSlash(name)))
		for c, v := range rows[0] {
			if v == recs[i].Sample[0].Value {
				column[name] = c
			}
		}
	}
	if a, b := column["s/chunk-0.parquet"], column["s/chunk-1.parquet"]; a == "" || a != b {
		t.Fatalf("the sample column is %q in one segment and %q in the other: want one name", a, b)
	}
}

// UnifyParquet gives a feature that one object lacks and another holds as
// nulls only the type it has where it has values, and rewrites only those
// objects, their rows unchanged; on a folder and on the real S3.
func TestUnifyParquet(t *testing.T) {
	ctx := context.Background()
	recs := records(t, 3)
	recs[0].Features = eventcenter.Row{"bal": 1.5, "n": int64(1)}
	recs[1].Features = eventcenter.Row{"bal": nil, "n": int64(2)} // null in the whole object: text
	recs[2].Features = eventcenter.Row{"n": int64(3)}             // no bal at all
	dests := map[string]func(t *testing.T) (outputs.Destination, func(name string) string){
		"dir": func(t *testing.T) (outputs.Destination, func(string) string) {
			dir := t.TempDir()
			return outputs.Dir(dir), func(name string) string { return filepath.Join(dir, name) }
		},
		"s3": func(t *testing.T) (outputs.Destination, func(string) string) {
			cfg := testenv.S3(t)
			client := s3.New(s3.Options{
				BaseEndpoint: aws.String(cfg.Endpoint), Region: cfg.Region, UsePathStyle: true,
				Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
			})
			d := outputs.S3{Client: client, Bucket: cfg.Bucket, Prefix: fmt.Sprintf("test/unify-%d/", time.Now().UnixNano())}
			local := t.TempDir()
			return d, func(name string) string { // a local copy to read
				obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(d.Bucket), Key: aws.String(d.Prefix + name)})
				if err != nil {
					t.Fatal(err)
				}
				defer obj.Body.Close()
				b, err := io.ReadAll(obj.Body)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(local, name)
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return path
			}
		},
	}
	for name, open := range dests {
		t.Run(name, func(t *testing.T) {
			dst, local := open(t)
			for i, r := range recs {
				putParquet(t, dst, fmt.Sprintf("chunk-%d.parquet", i), []job.Record{r})
			}
			objs, err := dst.List(ctx, "chunk-")
			if err != nil {
				t.Fatal(err)
			}
			rewritten, err := outputs.UnifyParquet(ctx, dst, objs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rewritten, []string{"chunk-1.parquet", "chunk-2.parquet"}) {
				t.Fatalf("rewritten %q, want the objects without a typed bal", rewritten)
			}
			var schemas []string
			for i := range recs {
				cols, rows := readColumns(t, local(fmt.Sprintf("chunk-%d.parquet", i)))
				schemas = append(schemas, openParquet(t, local(fmt.Sprintf("chunk-%d.parquet", i))).Schema().String())
				if len(rows) != 1 || rows[0]["id"] != recs[i].ID || rows[0]["n"] != int64(i+1) || !slices.Contains(cols, "bal") {
					t.Fatalf("object %d: columns %q, rows %v", i, cols, rows)
				}
				if i > 0 && rows[0]["bal"] != nil {
					t.Fatalf("object %d: bal %v, want null", i, rows[0]["bal"])
				}
			}
			if schemas[1] != schemas[0] || schemas[2] != schemas[0] || !strings.Contains(schemas[0], "optional double bal") {
				t.Fatalf("schemas differ:\n%s", strings.Join(schemas, "\n"))
			}
		})
	}
}

// BenchmarkParquetTrainingSegment writes one training-set segment: 8192
// records of two features and two sample columns, as a sample backfill's
// Parquet sink does, to a local folder.
func BenchmarkParquetTrainingSegment(b *testing.B) {
	const n = 8192
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]job.Record, n)
	for i := range recs {
		key := fmt.Sprintf("acct-%06d", i%20000)
		recs[i] = job.Record{ID: fmt.Sprintf("0123456789abcdef01234567-%d", i), Job: "training", JobVersion: "1", Entity: key,
			Trigger:  eventcenter.ID{Source: "bench.accounts", Key: key, Time: at.Add(time.Duration(i) * time.Second)},
			Features: eventcenter.Row{"balance": float64(i) / 3, "score": int64(i % 900)},
			Sample:   []job.Field{{Name: outputs.SampleColumn("row_id"), Value: int64(i)}, {Name: outputs.SampleColumn("label"), Value: int64(i % 2)}}}
	}
	dst := outputs.Dir(b.TempDir())
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		o, err := outputs.Parquet(dst, fmt.Sprintf("chunk-%d.parquet", i), "row_id", "label")
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Write(ctx, recs); err != nil {
			b.Fatal(err)
		}
		if err := o.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// A Sample field is written from the record's Sample whatever its name,
// and a field in both Sample and Features is one column holding Sample's
// value, as the record's JSON form does.
func TestParquetSampleFields(t *testing.T) {
	dir := t.TempDir()
	rec := records(t, 1)[0]
	rec.Features = eventcenter.Row{"x": int64(1)}
	rec.Sample = []job.Field{{Name: "label", Value: int64(5)}, {Name: "x", Value: int64(2)}}
	putParquet(t, outputs.Dir(dir), "s/x.parquet", []job.Record{rec})
	_, rows := readColumns(t, filepath.Join(dir, "s", "x.parquet"))
	if len(rows) != 1 || rows[0]["label"] != int64(5) || rows[0]["x"] != int64(2) {
		t.Fatalf("rows %v: want label 5 and x 2", rows)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"features":{"label":5,"x":2}`) {
		t.Fatalf("JSON %s: want label 5 and x 2", b)
	}
}

// A sample field's column type comes from its values in every record,
// whatever the field's position among the record's sample fields: null
// then int is int, int then string is text, and a field first met late, in
// the place of another, still gets its column.
func TestParquetSampleKindsOverRecords(t *testing.T) {
	dir := t.TempDir()
	a, b, c := outputs.SampleColumn("a"), outputs.SampleColumn("b"), outputs.SampleColumn("c")
	recs := records(t, 4)
	samples := [][]job.Field{
		{{Name: a}, {Name: b, Value: int64(1)}},
		{{Name: a, Value: int64(2)}, {Name: b, Value: "x"}},
		{{Name: c, Value: int64(9)}, {Name: b, Value: int64(3)}},
		{{Name: b, Value: int64(5)}},
	}
	for i := range recs {
		recs[i].Sample = samples[i]
	}
	putParquet(t, outputs.Dir(dir), "s/k.parquet", recs, "a", "b", "c")
	_, rows := readColumns(t, filepath.Join(dir, "s", "k.parquet"))
	want := []map[string]any{
		{"a": nil, "b": "1", "c": nil},
		{"a": int64(2), "b": "x", "c": nil},
		{"a": nil, "b": "3", "c": int64(9)},
		{"a": nil, "b": "5", "c": nil},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, w := range want {
		for col, v := range w {
			if got, ok := rows[i][col]; !ok || got != v {
				t.Errorf("row %d column %s: %#v (present %v), want %#v", i, col, got, ok, v)
			}
		}
	}
}

// The metadata columns that hold one value for a whole backfill (job,
// versions, source, a sample trigger's zero position) are dictionary or
// delta encoded, so they take next to no bytes, and every value reads back
// as written, the extremes of a position's offset (a uint64 read as an
// int64) among them, in every page (40 000 records: an integer column's
// page holds 32 768).
func TestParquetMetaColumnsEncoded(t *testing.T) {
	dir := t.TempDir()
	recs := records(t, 1)
	offsets := []uint64{0, 1<<64 - 1, 1 << 63, 1<<63 - 1, 7}
	for i := range 40_000 {
		r := recs[0]
		r.ID, r.Entity = fmt.Sprint("id-", i), fmt.Sprint("e", i)
		r.ParamVersion = params.Version(1 + i/10_000)
		r.Trigger.Pos = eventcenter.Position{Log: uint64(i % 2), Offset: offsets[i%len(offsets)]}
		if i >= 100 && (i < 32_700 || i >= 32_800) { // long runs of the zero position, as a sample backfill's
			r.Trigger.Pos = eventcenter.Position{}
		}
		recs = append(recs, r)
	}
	recs = recs[1:]
	putParquet(t, outputs.Dir(dir), "m/x.parquet", recs)
	path := filepath.Join(dir, "m", "x.parquet")
	pf := openParquet(t, path)
	want := map[string]string{
		"job": "RLE_DICTIONARY", "job_version": "RLE_DICTIONARY", "trigger_source": "RLE_DICTIONARY",
		"param_version": "DELTA_BINARY_PACKED", "trigger_log": "DELTA_BINARY_PACKED", "trigger_offset": "DELTA_BINARY_PACKED",
	}
	for _, rg := range pf.Metadata().RowGroups {
		for _, c := range rg.Columns {
			col := strings.Join(c.MetaData.PathInSchema, ".")
			enc, ok := want[col]
			if !ok {
				continue
			}
			var encs []string
			for _, e := range c.MetaData.Encoding {
				encs = append(encs, e.String())
			}
			if !slices.Contains(encs, enc) {
				t.Errorf("column %s: encodings %v, want %s", col, encs, enc)
			}
			if perValue := float64(c.MetaData.TotalCompressedSize) / float64(len(recs)); perValue > 2 {
				t.Errorf("column %s: %.1f bytes a value, want at most 2", col, perValue)
			}
		}
	}
	for i, c := range pf.RowGroups()[0].ColumnChunks() {
		if name := pf.Schema().Fields()[i].Name(); name == "trigger_offset" {
			oi, err := c.OffsetIndex()
			if err != nil {
				t.Fatal(err)
			}
			if oi.NumPages() < 2 {
				t.Fatalf("trigger_offset: %d pages, want several", oi.NumPages())
			}
		}
	}
	type row struct {
		ID            string `parquet:"id"`
		Job           string `parquet:"job"`
		JobVersion    string `parquet:"job_version"`
		ParamVersion  int64  `parquet:"param_version"`
		TriggerSource string `parquet:"trigger_source"`
		TriggerLog    int64  `parquet:"trigger_log"`
		TriggerOffset int64  `parquet:"trigger_offset"`
	}
	rows, err := parquet.ReadFile[row](path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(recs) {
		t.Fatalf("%d rows, want %d", len(rows), len(recs))
	}
	for i, r := range rows {
		w := &recs[i]
		if r.ID != w.ID || r.Job != w.Job || r.JobVersion != w.JobVersion || r.ParamVersion != int64(w.ParamVersion) ||
			r.TriggerSource != w.Trigger.Source || r.TriggerLog != int64(w.Trigger.Pos.Log) || uint64(r.TriggerOffset) != w.Trigger.Pos.Offset {
			t.Fatalf("row %d: %+v, want the record %+v", i, r, w)
		}
	}
}
