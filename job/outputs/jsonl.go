package outputs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tidemark-dev/tidemark/internal/durable"
	"github.com/tidemark-dev/tidemark/job"
)

// Destination stores the objects of file sinks (JSON Lines, Parquet,
// manifests).
type Destination interface {
	// Put stores the object name with the content of r (size bytes),
	// replacing any object of that name. Readers see the old object or the
	// new one, never a part.
	Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error
	// List returns the objects whose names start with prefix, by name.
	List(ctx context.Context, prefix string) ([]Object, error)
	// String describes the destination, e.g. "s3://bucket/prefix".
	String() string
}

// Dir is a Destination in a local folder: objects are files, written to a
// temporary file and renamed into place.
type Dir string

// Put implements Destination.
func (d Dir) Put(_ context.Context, name string, r io.ReadSeeker, _ int64) error {
	return d.write(name, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// write stores the object name with what write writes: into a temporary
// file beside it, synced, then renamed into place.
func (d Dir) write(name string, write func(w io.Writer) error) error {
	path := filepath.Join(string(d), filepath.FromSlash(name))
	if err := durable.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return durable.Rename(tmp.Name(), path)
}

func (d Dir) String() string { return "file://" + string(d) }

// Object is a stored object: its name in the destination and its size.
type Object struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// List implements Destination; it skips temporary files of unfinished Puts.
func (d Dir) List(_ context.Context, prefix string) ([]Object, error) {
	var out []Object
	root := string(d)
	start := filepath.Join(root, filepath.FromSlash(prefix[:strings.LastIndex(prefix, "/")+1]))
	err := filepath.WalkDir(start, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, Object{Name: name, Size: info.Size()})
		return nil
	})
	return out, err
}

// S3 is a Destination in an S3 bucket, under Prefix (objects are
// Prefix+name). S3's PutObject replaces an object atomically.
type S3 struct {
	Client *s3.Client
	Bucket string
	Prefix string
}

// Put implements Destination.
func (d S3) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	_, err := d.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(d.Bucket), Key: aws.String(d.Prefix + name), Body: r,
		ContentLength: aws.Int64(size), ContentType: aws.String("application/x-ndjson"),
	})
	if err != nil {
		return fmt.Errorf("outputs: s3 put %s/%s%s: %w", d.Bucket, d.Prefix, name, err)
	}
	return nil
}

func (d S3) String() string { return "s3://" + d.Bucket + "/" + d.Prefix }

// List implements Destination.
func (d S3) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(d.Client, &s3.ListObjectsV2Input{Bucket: aws.String(d.Bucket), Prefix: aws.String(d.Prefix + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("outputs: s3 list %s/%s%s: %w", d.Bucket, d.Prefix, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, Object{Name: strings.TrimPrefix(aws.ToString(o.Key), d.Prefix), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// JSONLinesOutput writes the records of one backfill chunk as one JSON
// Lines object: one job.Record JSON document per line, in order, each
// record ID once. The lines go to a local temporary file; Close puts the
// object. A retried chunk writes an object of the same name, which replaces
// the first: the sink is idempotent per chunk.
type JSONLinesOutput struct {
	dst  Destination
	name string

	mu     sync.Mutex
	tmp    *os.File
	drop   func() // closes tmp (see tempFile)
	w      *bufio.Writer
	seen   map[string]struct{}
	n      int
	closed bool
}

var (
	_ job.Output     = (*JSONLinesOutput)(nil)
	_ job.Idempotent = (*JSONLinesOutput)(nil)
)

// JSONLines returns a sink of the object name (e.g.
// "credit/2026-11-01T00/chunk-0007.jsonl") in dst.
func JSONLines(dst Destination, name string) (*JSONLinesOutput, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("outputs: object name %q must be relative", name)
	}
	tmp, drop, err := tempFile("tidemark-jsonl-*")
	if err != nil {
		return nil, err
	}
	return &JSONLinesOutput{dst: dst, name: name, tmp: tmp, drop: drop, w: bufio.NewWriterSize(tmp, 1<<16), seen: map[string]struct{}{}}, nil
}

// tempFile returns a new temporary file whose name is removed already
// (Linux, macOS): a process killed while it writes leaves no file behind.
// Where an open file's name cannot be removed (Windows), it is removed by
// drop, which closes the file.
func tempFile(pattern string) (f *os.File, drop func(), err error) {
	if f, err = os.CreateTemp("", pattern); err != nil {
		return nil, nil, err
	}
	named := os.Remove(f.Name()) != nil
	return f, func() {
		f.Close()
		if named {
			os.Remove(f.Name())
		}
	}, nil
}

// Name implements job.Output.
func (o *JSONLinesOutput) Name() string { return "jsonl:" + o.dst.String() + o.name }

// Idempotent implements job.Idempotent.
func (o *JSONLinesOutput) Idempotent() {}

// Write implements job.Output: records whose ID was written already are
// skipped.
func (o *JSONLinesOutput) Write(_ context.Context, recs []job.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("outputs: jsonl sink closed")
	}
	enc := json.NewEncoder(o.w)
	for i := range recs {
		if _, ok := o.seen[recs[i].ID]; ok {
			continue
		}
		if err := enc.Encode(recs[i]); err != nil {
			return err
		}
		o.seen[recs[i].ID] = struct{}{}
		o.n++
	}
	return nil
}

// Count returns the number of records written.
func (o *JSONLinesOutput) Count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// Close puts the object in the destination and drops the temporary
// file. Nothing is visible before Close.
func (o *JSONLinesOutput) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	defer o.drop()
	if err := o.w.Flush(); err != nil {
		return err
	}
	size, err := o.tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := o.tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return o.dst.Put(ctx, o.name, o.tmp, size)
}

// Abort drops the sink's records without putting anything.
func (o *JSONLinesOutput) Abort() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		o.drop()
	}
}
