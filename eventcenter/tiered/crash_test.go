package tiered_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
)

// The crash test's data: three rounds of appends, each stored an hour after
// the one before, the later ones late events and corrections for the slices
// the earlier ones filled, so tiering folds them into new segment versions.
var (
	crashStored = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	crashBase   = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
)

const (
	crashRounds    = 3
	crashPerRound  = 3000
	crashSources   = 2
	crashChildEnv  = "TIERED_CRASH_CHILD"
	crashRunsEnv   = "TIERED_CRASH_RUNS"
	crashSliceSize = 6 * time.Hour
)

func crashEvents(round int) []eventcenter.Event {
	rng := rand.New(rand.NewPCG(uint64(round), 7))
	var evs []eventcenter.Event
	for i := range crashPerRound {
		evs = append(evs, eventcenter.Event{
			Source: fmt.Sprintf("crash.s%d", i%crashSources),
			Key:    fmt.Sprintf("k%03d", rng.IntN(500)),
			Time:   crashBase.Add(time.Duration(rng.IntN(3*24*3600)) * time.Second),
			Pos:    eventcenter.Position{Log: uint64(round), Offset: uint64(i)},
			Op:     eventcenter.OpUpdate,
			After:  eventcenter.Row{"round": int64(round), "i": int64(i), "user": strconv.Itoa(i % 17)},
		})
	}
	return evs
}

// crashOpen opens the tiered store of a crash run's folder.
func crashOpen(t testing.TB, dir string, now func() time.Time, log *slog.Logger) *tiered.Store {
	t.Helper()
	hot, err := embedded.Open(embedded.Config{Dir: filepath.Join(dir, "hot"), Now: now, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tiered.New(tiered.Config{Hot: hot, Cold: tiered.Dir(filepath.Join(dir, "cold")), Now: now,
		Slice: crashSliceSize, RowGroupRows: 256, SegmentRows: 2000, EvictGrace: tiered.EvictGraceNone, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCrashChild is the tiering process that TestCrash kills: it tiers the
// folder's rounds one after the other, printing each step.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	s := crashOpen(t, dir, time.Now, slog.New(slog.NewTextHandler(os.Stdout, nil)))
	defer s.Close()
	for r := range crashRounds {
		rep, err := s.TierBefore(context.Background(), crashStored.Add(time.Duration(r)*time.Hour+time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("round %d: %+v\n", r, rep)
	}
}

// TestCrash: a tiering process SIGKILLed at a random moment, then run again
// to the end, leaves every event readable exactly once, hot or cold, and
// each in one place only. TIERED_CRASH_RUNS sets the number of runs
// (default 5); each prints its seed and kill delay.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	runs := 5
	if n, err := strconv.Atoi(os.Getenv(crashRunsEnv)); err == nil && n > 0 {
		runs = n
	}
	// Calibrate: how long a whole tiering takes here, so kills land inside it.
	full := crashRun(t, 0, -1)
	for i := range runs {
		seed := uint64(time.Now().UnixNano()) + uint64(i)
		delay := time.Duration(rand.New(rand.NewPCG(seed, 1)).Int64N(int64(full)))
		t.Logf("run %d: seed %d, SIGKILL after %v (a whole tiering took %v)", i, seed, delay, full)
		crashRun(t, seed, delay)
	}
}

// crashRun fills a fresh folder, runs the tiering child, kills it after
// delay (if not negative), runs it again to the end and checks the
// result. It returns how long the first child ran.
func crashRun(t *testing.T, seed uint64, delay time.Duration) time.Duration {
	t.Helper()
	dir := t.TempDir()
	stamp := crashStored
	s := crashOpen(t, dir, func() time.Time { return stamp }, nil)
	ctx := t.Context()
	var all []eventcenter.Event
	for r := range crashRounds {
		stamp = crashStored.Add(time.Duration(r) * time.Hour)
		evs := crashEvents(r)
		if err := s.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	child := func(kill time.Duration) (time.Duration, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := os.CreateTemp(t.TempDir(), "child-*.log")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if kill >= 0 {
			time.AfterFunc(kill, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		}
		err = cmd.Wait()
		took := time.Since(start)
		log, _ := os.ReadFile(out.Name())
		if kill < 0 && err != nil {
			t.Fatalf("tiering child: %v\n%s", err, log)
		}
		return took, string(log)
	}
	var took time.Duration
	if delay >= 0 {
		_, log := child(delay)
		lines := strings.Split(strings.TrimSpace(log), "\n")
		t.Logf("seed %d: killed after %d lines of log, the last: %s", seed, len(lines), lines[len(lines)-1])
	} else {
		took, _ = child(-1)
	}
	child(-1)

	// Every event once, with its first StoredAt.
	s = crashOpen(t, dir, time.Now, nil)
	defer s.Close()
	var sources []string
	for i := range crashSources {
		sources = append(sources, fmt.Sprintf("crash.s%d", i))
	}
	got := map[eventcenter.ID]int{}
	for e, err := range s.Replay(ctx, eventcenter.ReplayQuery{Sources: sources, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}) {
		if err != nil {
			t.Fatal(err)
		}
		got[e.ID()]++
	}
	for _, e := range all {
		if got[e.ID()] != 1 {
			t.Errorf("seed %d: event %v read %d times, want once", seed, e.ID(), got[e.ID()])
		}
	}
	if len(got) != len(all) {
		t.Errorf("seed %d: %d events read, %d appended", seed, len(got), len(all))
	}
	// And each in one place: hot holds none of them, cold each once.
	if rep, err := s.TierBefore(ctx, crashStored.Add(crashRounds*time.Hour)); err != nil || rep.Events != 0 {
		t.Errorf("seed %d: a further tiering moved %+v (%v); the rerun left events in hot", seed, rep, err)
	}
	cold := 0
	for _, src := range sources {
		m, err := tiered.ReadManifest(ctx, tiered.Dir(filepath.Join(dir, "cold")), src)
		if err != nil {
			t.Fatal(err)
		}
		for _, seg := range m.Segments {
			cold += seg.Rows
		}
	}
	if cold != len(all) {
		t.Errorf("seed %d: the manifests list %d rows, want %d", seed, cold, len(all))
	}
	// The further tiering collected what the killed run left unlisted.
	for _, src := range sources {
		m, err := tiered.ReadManifest(ctx, tiered.Dir(filepath.Join(dir, "cold")), src)
		if err != nil {
			t.Fatal(err)
		}
		names, err := tiered.Dir(filepath.Join(dir, "cold")).List(ctx, "segments/"+src+"/")
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, seg := range m.Segments {
			listed = append(listed, seg.Name)
			if seg.IndexObject {
				listed = append(listed, seg.Name+".idx")
			}
		}
		slices.Sort(listed)
		if !slices.Equal(names, listed) {
			t.Errorf("seed %d: %d objects of %s, the manifest lists %d", seed, len(names), src, len(listed))
		}
	}
	return took
}
