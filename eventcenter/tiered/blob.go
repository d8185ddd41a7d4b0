package tiered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tidemark-dev/tidemark/internal/durable"
)

// ErrNoObject: a Blob has no object of that name.
var ErrNoObject = errors.New("tiered: no such object")

// Blob is the object store the cold tier keeps its segments and manifests
// in. Names are slash-separated paths of printable ASCII. Every method is
// safe for concurrent use.
//
// Put replaces the object whole and atomically: a reader sees the old bytes
// or the new ones, never a part (S3's PUT; a rename in a folder). Get and
// GetRange return ErrNoObject (under errors.Is) for a missing object;
// GetRange returns exactly n bytes from off, or an error. List returns the
// names under a prefix in byte order. Delete of a missing object is not an
// error.
type Blob interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	GetRange(ctx context.Context, name string, off, n int64) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, name string) error
}

// Dir is a Blob in a local folder (the dev stack and tests).
type Dir string

var _ Blob = Dir("")

func (d Dir) path(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

// Put writes a temporary file and renames it over the name.
func (d Dir) Put(_ context.Context, name string, data []byte) error {
	p := d.path(name)
	if err := durable.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = durable.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("tiered: put %s: %w", name, err)
	}
	return nil
}

func (d Dir) Get(_ context.Context, name string) ([]byte, error) {
	b, err := os.ReadFile(d.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoObject, name)
	}
	return b, err
}

func (d Dir) GetRange(_ context.Context, name string, off, n int64) ([]byte, error) {
	f, err := os.Open(d.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoObject, name)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("tiered: get %s [%d, +%d): %w", name, off, n, err)
	}
	return b, nil
}

func (d Dir) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(string(d), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".put-") {
			return nil
		}
		rel, err := filepath.Rel(string(d), p)
		if err != nil {
			return err
		}
		if name := filepath.ToSlash(rel); strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

func (d Dir) Delete(_ context.Context, name string) error {
	if err := os.Remove(d.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// S3 is a Blob in an S3 bucket under a prefix (aws-sdk-go-v2).
type S3 struct {
	Client *s3.Client
	Bucket string
	Prefix string // prepended to every name, e.g. "eventcenter/"
}

var _ Blob = S3{}

func (b S3) key(name string) *string { return aws.String(b.Prefix + name) }

func (b S3) Put(ctx context.Context, name string, data []byte) error {
	_, err := b.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Bucket), Key: b.key(name), Body: bytes.NewReader(data)})
	if err != nil {
		return fmt.Errorf("tiered: put s3://%s/%s%s: %w", b.Bucket, b.Prefix, name, err)
	}
	return nil
}

func (b S3) Get(ctx context.Context, name string) ([]byte, error) {
	return b.get(ctx, name, nil, -1)
}

func (b S3) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	return b.get(ctx, name, aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)), n)
}

func (b S3) get(ctx context.Context, name string, rng *string, n int64) ([]byte, error) {
	out, err := b.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.Bucket), Key: b.key(name), Range: rng})
	if err != nil {
		var nk *types.NoSuchKey
		if errors.As(err, &nk) {
			return nil, fmt.Errorf("%w: %s", ErrNoObject, name)
		}
		return nil, fmt.Errorf("tiered: get s3://%s/%s%s: %w", b.Bucket, b.Prefix, name, err)
	}
	defer out.Body.Close()
	if n < 0 {
		return io.ReadAll(out.Body)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		return nil, fmt.Errorf("tiered: get s3://%s/%s%s: %w", b.Bucket, b.Prefix, name, err)
	}
	return buf, nil
}

func (b S3) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(b.Client, &s3.ListObjectsV2Input{Bucket: aws.String(b.Bucket), Prefix: b.key(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("tiered: list s3://%s/%s%s: %w", b.Bucket, b.Prefix, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, strings.TrimPrefix(aws.ToString(o.Key), b.Prefix))
		}
	}
	return out, nil
}

func (b S3) Delete(ctx context.Context, name string) error {
	_, err := b.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.Bucket), Key: b.key(name)})
	if err != nil {
		return fmt.Errorf("tiered: delete s3://%s/%s%s: %w", b.Bucket, b.Prefix, name, err)
	}
	return nil
}
