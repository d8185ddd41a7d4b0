package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/parity"
)

// The parity's types, named here for the workflow.
type (
	ParityCause  = parity.Cause
	ParityDiff   = parity.Diff
	ParityReport = parity.Report
)

// Parity runs parity comparisons (package parity).
type Parity struct {
	// Store is the event center. Required.
	Store eventcenter.Store
	// Jobs a parity run may name.
	Jobs Jobs
	// Params is the parameter registry; it must also answer versions and
	// points in time (parity.Registry). Default nil: declared defaults.
	Params params.Registry
	// Dest is where each run's list of differences goes: one JSON-lines
	// object per chunk, <run>/chunk-<n>.jsonl (outputs.Dir, outputs.S3).
	// Default: outputs.Dir under os.TempDir, tidemark-parity.
	Dest outputs.Destination
	// Metrics, if not nil, count each chunk's triggers and differences.
	Metrics *parity.Metrics
	// DeadLetters tell which triggers the live workers gave up on
	// (parity.Config.DeadLetters). Default nil: a stale live run shows
	// as live-missing.
	DeadLetters parity.DeadLetters
}

// ParityChunkInput asks to compare one chunk of a parity run's range.
type ParityChunkInput struct {
	Run   string    `json:"run"` // the workflow ID: names the output folder
	Job   string    `json:"job"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Chunk int       `json:"chunk"`
	// Examples bounds the differences per cause returned (all are in the
	// object).
	Examples int `json:"examples"`
}

// ParityChunkResult is a chunk's report, with at most Examples differences
// per cause, and the file listing all of them (empty if none).
type ParityChunkResult struct {
	Report ParityReport `json:"report"`
	Object string       `json:"object,omitempty"`
}

// ParityChunk compares the chunk and writes every difference, one JSON
// object a line, to Dest's <run>/chunk-<n>.jsonl (rewritten whole by a
// retry); the result's Object names it (file://… or s3://…).
// An unknown job fails without retry.
func (a *Parity) ParityChunk(ctx context.Context, in ParityChunkInput) (ParityChunkResult, error) {
	j, ok := a.Jobs[in.Job]
	if !ok {
		return ParityChunkResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("parity: unknown job %q", in.Job), "UnknownJob", nil)
	}
	cfg, err := a.config(j)
	if err != nil {
		return ParityChunkResult{}, err
	}
	cfg.Examples = math.MaxInt
	rep, err := parity.Compare(ctx, cfg, in.From, in.To)
	if err != nil {
		return ParityChunkResult{}, err
	}
	if a.Metrics != nil {
		a.Metrics.Observe(rep)
	}
	var res ParityChunkResult
	if len(rep.Diffs) > 0 {
		if res.Object, err = a.writeDiffs(ctx, in, rep.Diffs); err != nil {
			return ParityChunkResult{}, err
		}
	}
	shown := map[parity.Cause]int{}
	kept := rep.Diffs[:0]
	for _, d := range rep.Diffs {
		if shown[d.Cause]++; shown[d.Cause] <= in.Examples {
			kept = append(kept, d)
		}
	}
	rep.Diffs = kept
	res.Report = *rep
	return res, nil
}

func (a *Parity) writeDiffs(ctx context.Context, in ParityChunkInput, diffs []parity.Diff) (string, error) {
	dest := a.Dest
	if dest == nil {
		dest = outputs.Dir(filepath.Join(os.TempDir(), "tidemark-parity"))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range diffs {
		if err := enc.Encode(&diffs[i]); err != nil {
			return "", fmt.Errorf("parity: encode a difference: %w", err)
		}
	}
	name := fmt.Sprintf("%s/chunk-%05d.jsonl", in.Run, in.Chunk)
	if err := dest.Put(ctx, name, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		return "", fmt.Errorf("parity: write %s: %w", name, err)
	}
	if s, ok := dest.(fmt.Stringer); ok {
		return strings.TrimSuffix(s.String(), "/") + "/" + name, nil
	}
	return name, nil
}
