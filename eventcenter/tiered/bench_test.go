package tiered

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
)

// Benchmarks of the cold tier, each beside its raw baseline doing the same
// work (see bench/README.md):
//
//	go test -run '^$' -bench . -benchtime 1x ./eventcenter/tiered/
//
// BENCH_EVENTS sets the events (default 200,000); with TIDEMARK_S3_* set
// (scripts/services env) the cold reads also run against the S3 server.

const benchSource = "bench.orders"

var benchStored = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func benchEvents() []eventcenter.Event {
	n := 200_000
	if v, err := fmt.Sscan(os.Getenv("BENCH_EVENTS"), &n); v != 1 || err != nil {
		n = 200_000
	}
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]eventcenter.Event, n)
	for i := range evs {
		evs[i] = eventcenter.Event{
			Source: benchSource, Key: fmt.Sprintf("order-%06d", i%20_000), Time: t0.Add(time.Duration(i) * 10 * time.Second),
			Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}, Op: eventcenter.OpUpdate, StoredAt: benchStored,
			After: eventcenter.Row{"user": fmt.Sprint("user-", i%3000), "amount": eventcenter.Decimal(fmt.Sprintf("%d.%02d", i%5000, i%100)),
				"status": []string{"new", "paid", "shipped"}[i%3], "items": int64(i % 7)},
		}
	}
	return evs
}

// benchGroupRows is BENCH_GROUP_ROWS, else the default row group size.
func benchGroupRows() int {
	var n int
	fmt.Sscan(os.Getenv("BENCH_GROUP_ROWS"), &n)
	return n
}

// benchStore fills a tiered store over an on-disk embedded store and cold.
func benchStore(b *testing.B, cold Blob, evs []eventcenter.Event) (*Store, Hot) {
	b.Helper()
	stamp := benchStored
	hot, err := embedded.Open(embedded.Config{Dir: b.TempDir(), NoSync: true, Now: func() time.Time { return stamp }})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Hot: hot, Cold: cold, Now: func() time.Time { return stamp }, HotWindow: time.Hour, EvictGrace: EvictGraceNone, RowGroupRows: benchGroupRows()})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(evs); i += 10_000 {
		if err := s.Append(context.Background(), evs[i:min(i+10_000, len(evs))]); err != nil {
			b.Fatal(err)
		}
	}
	stamp = stamp.Add(2 * time.Hour)
	return s, hot
}

func benchBlobs(b *testing.B) map[string]func(b *testing.B) Blob {
	blobs := map[string]func(b *testing.B) Blob{"dir": func(b *testing.B) Blob { return Dir(b.TempDir()) }}
	if ep := os.Getenv("TIDEMARK_S3_ENDPOINT"); ep != "" {
		env := func(k, d string) string {
			if v := os.Getenv(k); v != "" {
				return v
			}
			return d
		}
		client := s3.New(s3.Options{BaseEndpoint: aws.String(ep), Region: env("TIDEMARK_S3_REGION", "us-east-1"), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(env("TIDEMARK_S3_ACCESS_KEY", "tidemark"), env("TIDEMARK_S3_SECRET_KEY", "tidemark-secret"), "")})
		blobs["s3"] = func(b *testing.B) Blob {
			return S3{Client: client, Bucket: env("TIDEMARK_S3_BUCKET", "tidemark"), Prefix: fmt.Sprintf("bench/tiered-%d/", time.Now().UnixNano())}
		}
	}
	return blobs
}

// BenchmarkTier: tiering (read hot, sort, write and verify segments,
// commit, evict) beside writing the same events to Parquet alone (rows
// converted and written to a file, one object per day as tiering does).
func BenchmarkTier(b *testing.B) {
	evs := benchEvents()
	b.Run("tier", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			s, _ := benchStore(b, Dir(b.TempDir()), evs)
			b.StartTimer()
			rep, err := s.Tier(context.Background())
			if err != nil || rep.Events != len(evs) {
				b.Fatalf("%+v %v", rep, err)
			}
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(len(evs)*b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("parquet-alone", func(b *testing.B) {
		for range b.N {
			dir := b.TempDir()
			byDay := map[time.Time][]eventcenter.Event{}
			for _, e := range evs {
				byDay[e.Time.Truncate(24*time.Hour)] = append(byDay[e.Time.Truncate(24*time.Hour)], e)
			}
			for day, part := range byDay {
				var buf bytes.Buffer
				w := parquet.NewGenericWriter[segRow](&buf, parquet.Compression(&parquet.Zstd))
				rows := make([]segRow, len(part))
				for i := range part {
					rows[i] = toRow(&part[i])
				}
				if _, err := w.Write(rows); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, day.Format("20060102")+".parquet"), buf.Bytes(), 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(len(evs)*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkColdAsOf: a cold as-of at first touch (a fresh Store holding
// the source's manifest, as readers keep it: the segment's footer and the
// row group, two ranged GETs at once) and warm (the row group cached),
// beside a bare ranged GET of the same row group.
// Reports p50 and p99 latencies.
func BenchmarkColdAsOf(b *testing.B) {
	evs := benchEvents()
	for name, newBlob := range benchBlobs(b) {
		cold := newBlob(b)
		s, hot := benchStore(b, cold, evs)
		if _, err := s.Tier(context.Background()); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		m, err := s.Manifest(ctx, benchSource)
		if err != nil {
			b.Fatal(err)
		}
		seg := m.Segments[len(m.Segments)/2]
		q := func(i int) eventcenter.AsOf {
			k := seg.RowGroups[i%len(seg.RowGroups)].FirstKey
			return eventcenter.AsOf{Source: benchSource, Key: string(k), Time: seg.MaxTime}
		}
		latencies := func(b *testing.B, op func(i int)) {
			lat := make([]time.Duration, 0, b.N)
			for i := range b.N {
				start := time.Now()
				op(i)
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		}
		b.Run(name+"/first-touch", func(b *testing.B) {
			latencies(b, func(i int) {
				b.StopTimer()
				fresh, err := New(Config{Hot: hot, Cold: cold, HotWindow: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := fresh.Manifest(ctx, benchSource); err != nil { // readers keep it cached
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := fresh.AsOf(ctx, q(i)); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(name+"/warm", func(b *testing.B) {
			if _, err := s.AsOf(ctx, q(0)); err != nil {
				b.Fatal(err)
			}
			latencies(b, func(int) {
				if _, err := s.AsOf(ctx, q(0)); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(name+"/bare-ranged-get", func(b *testing.B) {
			latencies(b, func(i int) {
				g := seg.RowGroups[i%len(seg.RowGroups)]
				if _, err := cold.GetRange(ctx, seg.Name, g.Offset, g.Length); err != nil {
					b.Fatal(err)
				}
			})
		})
		s.Close()
	}
}

// BenchmarkColdReplay: a replay of a source that is all cold beside reading
// the same Parquet objects with parquet-go (rows only, no events built).
func BenchmarkColdReplay(b *testing.B) {
	evs := benchEvents()
	for name, newBlob := range benchBlobs(b) {
		cold := newBlob(b)
		s, _ := benchStore(b, cold, evs)
		ctx := context.Background()
		if _, err := s.Tier(ctx); err != nil {
			b.Fatal(err)
		}
		m, err := s.Manifest(ctx, benchSource)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/replay", func(b *testing.B) {
			for range b.N {
				n := 0
				for _, err := range s.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{benchSource}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != len(evs) {
					b.Fatalf("replayed %d events, want %d", n, len(evs))
				}
			}
			b.ReportMetric(float64(len(evs)*b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(name+"/parquet-go", func(b *testing.B) {
			for range b.N {
				n := 0
				for _, seg := range m.Segments {
					data, err := cold.Get(ctx, seg.Name)
					if err != nil {
						b.Fatal(err)
					}
					rows, err := parquet.Read[segRow](bytes.NewReader(data), int64(len(data)))
					if err != nil {
						b.Fatal(err)
					}
					n += len(rows)
				}
				if n != len(evs) {
					b.Fatalf("read %d rows, want %d", n, len(evs))
				}
			}
			b.ReportMetric(float64(len(evs)*b.N)/b.Elapsed().Seconds(), "events/s")
		})
		s.Close()
	}
}

// BenchmarkBytesPerEvent reports what an event takes in the embedded hot
// store (its folder after a compaction-free close: tables and log) and in
// the cold tier (segments). It measures sizes, not time.
func BenchmarkBytesPerEvent(b *testing.B) {
	evs := benchEvents()
	for range b.N {
		hotDir, coldDir := b.TempDir(), b.TempDir()
		stamp := benchStored
		hot, err := embedded.Open(embedded.Config{Dir: hotDir, NoSync: true, Now: func() time.Time { return stamp }})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(evs); i += 10_000 {
			if err := hot.Append(context.Background(), evs[i:min(i+10_000, len(evs))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := hot.Close(); err != nil {
			b.Fatal(err)
		}
		hotBytes := dirSize(b, hotDir)
		s, _ := benchStore(b, Dir(coldDir), evs)
		if _, err := s.Tier(context.Background()); err != nil {
			b.Fatal(err)
		}
		s.Close()
		b.ReportMetric(float64(hotBytes)/float64(len(evs)), "hot-B/event")
		b.ReportMetric(float64(dirSize(b, filepath.Join(coldDir, "segments")))/float64(len(evs)), "cold-B/event")
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
