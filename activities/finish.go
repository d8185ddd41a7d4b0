package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/activity"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job/outputs"
)

// Names of a file sink's end markers, beside the chunk objects in
// <backfill>/<job>/.
const (
	ManifestName = "_manifest.json"
	SuccessName  = "_SUCCESS"
)

// IsFileSink reports whether the sink spec names files (file:// or s3://),
// which BackfillFinish ends with a manifest.
func IsFileSink(spec string) bool {
	u, err := url.Parse(spec)
	return err == nil && (u.Scheme == "file" || u.Scheme == "s3")
}

// Manifest describes what a backfill wrote to a file sink: what it was
// asked, with which versions, what it counted, which objects hold the
// records, and how it ended. BackfillFinish writes it as _manifest.json.
type Manifest struct {
	Backfill string `json:"backfill"`
	// Run tells this backfill from others of the same ID (see
	// ChunkInput.Run); empty for workflow versions before 2.
	Run        string `json:"run,omitempty"`
	Job        string `json:"job"`
	JobVersion string `json:"jobVersion"`
	// Status: "done", "failed" or "canceled". Only a done backfill has a
	// _SUCCESS marker beside its manifest.
	Status string `json:"status"`
	// Format of the objects: "jsonl" or "parquet".
	Format string `json:"format"`
	// Input and Summary are the workflow's (workflows.BackfillInput and
	// workflows.Summary): the range or sample table, the options, the
	// counts, the parameter versions, the warnings.
	Input   json.RawMessage `json:"input"`
	Summary json.RawMessage `json:"summary"`
	// Sample is the sample table a training set was read from, with the
	// version that pins it (FinishInput.Sample).
	Sample *SampleTable `json:"sample,omitempty"`
	// Error says why a backfill that is not done ended.
	Error string `json:"error,omitempty"`
	// Objects are the record objects, by name (relative to the sink), with
	// their sizes. The summary's "written" is the records they hold.
	Objects []outputs.Object `json:"objects"`
	// Finished is when the manifest was written.
	Finished time.Time `json:"finished"`
}

// FinishResult is BackfillFinish's answer: small, whatever the number of
// objects (the manifest holds them).
type FinishResult struct {
	// Manifest is the manifest's object name in the sink.
	Manifest string `json:"manifest"`
	Objects  int    `json:"objects"`
	Success  bool   `json:"success"`
}

// BackfillFinish ends a backfill's file sink: it lists the backfill's
// record objects and writes the manifest, then, for a done backfill, the
// empty _SUCCESS marker — last, so that a reader that sees _SUCCESS sees
// every object and the manifest. Running it again rewrites both.
func (a *Backfill) BackfillFinish(ctx context.Context, in FinishInput) (FinishResult, error) {
	j, err := a.job(in.Job)
	if err != nil {
		return FinishResult{}, err
	}
	s, err := a.parseSink(in.Options)
	if err != nil {
		return FinishResult{}, err
	}
	fs, ok := s.(fileSink)
	if !ok {
		return FinishResult{}, permanent(ErrTypeBadInput, "backfill: sink %q has no manifest", in.Options.Sink)
	}
	dir := folder(in.Backfill, in.Job)
	objs, err := fs.dst.List(ctx, dir)
	if err != nil {
		return FinishResult{}, err
	}
	if fs.format == FormatParquet {
		// The segments' objects as one table: a feature null in a whole
		// segment is typed there as where it has values.
		var chunks []outputs.Object
		for _, o := range objs {
			if strings.HasPrefix(o.Name[len(dir):], "chunk-") && strings.HasSuffix(o.Name, ".parquet") {
				chunks = append(chunks, o)
			}
		}
		rewritten, err := outputs.UnifyParquet(ctx, fs.dst, chunks)
		if err != nil {
			return FinishResult{}, err
		}
		if len(rewritten) > 0 {
			if objs, err = fs.dst.List(ctx, dir); err != nil { // their sizes changed
				return FinishResult{}, err
			}
		}
	}
	m := Manifest{Backfill: in.Backfill, Run: in.Run, Job: in.Job, JobVersion: j.Version(), Status: in.Status, Format: fs.format,
		Input: in.Input, Summary: in.Summary, Sample: in.Sample, Error: in.Error, Objects: []outputs.Object{}, Finished: time.Now().UTC()}
	for _, o := range objs {
		if strings.HasPrefix(o.Name[len(dir):], "chunk-") {
			m.Objects = append(m.Objects, o)
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return FinishResult{}, err
	}
	if err := fs.dst.Put(ctx, dir+ManifestName, bytes.NewReader(b), int64(len(b))); err != nil {
		return FinishResult{}, err
	}
	res := FinishResult{Manifest: dir + ManifestName, Objects: len(m.Objects)}
	if in.Status == "done" {
		if err := fs.dst.Put(ctx, dir+SuccessName, bytes.NewReader(nil), 0); err != nil {
			return FinishResult{}, err
		}
		res.Success = true
	}
	return res, nil
}

// BackfillWaitWatermark waits until the watermark of each of in.Sources
// (in.Source when empty: inputs of older workflows) reaches in.Until,
// heartbeating, and returns the earliest of the watermarks then. The workflow
// bounds the wait with the activity's timeout.
func (a *Backfill) BackfillWaitWatermark(ctx context.Context, in WaitInput) (time.Time, error) {
	sources := in.Sources
	if len(sources) == 0 {
		sources = []string{in.Source}
	}
	for _, src := range sources {
		if err := a.waitWatermark(ctx, src, in.Until); err != nil {
			return time.Time{}, err
		}
	}
	_, wm, _, err := a.watermarks(ctx, sources)
	return wm, err
}

// waitWatermark waits until source's watermark reaches until,
// heartbeating the watermark as it moves.
func (a *Backfill) waitWatermark(ctx context.Context, source string, until time.Time) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.Store.WaitWatermark(wctx, source, until)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, eventcenter.ErrWatermarkTimeout) {
			return fmt.Errorf("backfill: watermark of %s: %w", source, err)
		}
		wm, err := a.Store.Watermark(ctx, source)
		if err != nil {
			return err
		}
		activity.RecordHeartbeat(ctx, wm)
	}
}

// watermarks returns the watermark of each of sources and, as plans of
// workflow versions before 2 read them, the earliest (zero if one is zero)
// and whether the first source whose watermark is zero has partitions at
// the floor (behind) rather than none (unwatched).
func (a *Backfill) watermarks(ctx context.Context, sources []string) (ws []SourceWatermark, earliest time.Time, floor bool, err error) {
	for _, src := range sources {
		wm, err := a.Store.Watermark(ctx, src)
		if err != nil {
			return nil, time.Time{}, false, fmt.Errorf("backfill: watermark of %s: %w", src, err)
		}
		w := SourceWatermark{Source: src, Watermark: wm}
		if wm.IsZero() {
			// No watermark at all, or partitions registered at the floor.
			parts, err := a.Store.PartitionWatermarks(ctx, src)
			if err != nil {
				return nil, time.Time{}, false, fmt.Errorf("backfill: watermarks of %s: %w", src, err)
			}
			w.Floor = len(parts) > 0
		}
		ws = append(ws, w)
	}
	for i, w := range ws {
		if w.Watermark.IsZero() {
			return ws, time.Time{}, w.Floor, nil
		}
		if i == 0 || w.Watermark.Before(earliest) {
			earliest = w.Watermark
		}
	}
	return ws, earliest, false, nil
}

// BackfillClear empties a file sink's folder of the backfill,
// <backfill>/<job>/, before its first chunk runs, and returns the number of
// objects it removed. A folder that holds objects belongs to an earlier
// backfill of the same workflow ID (one that ended and was started again):
// its chunks, manifest and _SUCCESS would read as this backfill's. The
// marker goes first, so that no reader sees it beside a folder being
// emptied. Running it again before the first chunk is harmless.
func (a *Backfill) BackfillClear(ctx context.Context, in ClearInput) (int, error) {
	s, err := a.parseSink(in.Options)
	if err != nil {
		return 0, err
	}
	sk, ok := s.(fileSink)
	if !ok {
		return 0, permanent(ErrTypeBadInput, "backfill: sink %q has no folder to clear", in.Options.Sink)
	}
	dir := folder(in.Backfill, in.Job)
	objs, err := sk.dst.List(ctx, dir)
	if err != nil {
		return 0, err
	}
	if err := remove(ctx, sk.dst, dir+SuccessName); err != nil {
		return 0, err
	}
	for _, o := range objs {
		if o.Name != dir+SuccessName {
			if err := remove(ctx, sk.dst, o.Name); err != nil {
				return 0, err
			}
		}
	}
	return len(objs), nil
}

// remove deletes the object name of dst; a missing one is not an error.
func remove(ctx context.Context, dst outputs.Destination, name string) error {
	switch d := dst.(type) {
	case outputs.Dir:
		err := os.Remove(filepath.Join(string(d), filepath.FromSlash(name)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("backfill: remove %s: %w", name, err)
		}
		return nil
	case outputs.S3:
		if _, err := d.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(d.Bucket), Key: aws.String(d.Prefix + name)}); err != nil {
			return fmt.Errorf("backfill: remove s3://%s/%s%s: %w", d.Bucket, d.Prefix, name, err)
		}
		return nil
	}
	return fmt.Errorf("backfill: cannot remove objects of %s", dst)
}
