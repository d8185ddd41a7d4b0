package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

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
	Backfill   string `json:"backfill"`
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
	dir := safeName(in.Backfill) + "/" + safeName(in.Job) + "/"
	objs, err := fs.dst.List(ctx, dir)
	if err != nil {
		return FinishResult{}, err
	}
	m := Manifest{Backfill: in.Backfill, Job: in.Job, JobVersion: j.Version(), Status: in.Status, Format: fs.format,
		Input: in.Input, Summary: in.Summary, Objects: []outputs.Object{}, Finished: time.Now().UTC()}
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
	wm, _, err := a.watermark(ctx, sources)
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

// watermark returns the earliest watermark of sources, zero if one has
// none; floor reports that zero is a source's partitions registered at the
// floor (behind), not a source without watermarks.
func (a *Backfill) watermark(ctx context.Context, sources []string) (wm time.Time, floor bool, err error) {
	var earliest time.Time
	for i, src := range sources {
		wm, err := a.Store.Watermark(ctx, src)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("backfill: watermark of %s: %w", src, err)
		}
		if wm.IsZero() {
			// No watermark at all, or partitions registered at the floor.
			parts, err := a.Store.PartitionWatermarks(ctx, src)
			if err != nil {
				return time.Time{}, false, fmt.Errorf("backfill: watermarks of %s: %w", src, err)
			}
			return time.Time{}, len(parts) > 0, nil
		}
		if i == 0 || wm.Before(earliest) {
			earliest = wm
		}
	}
	return earliest, false, nil
}
