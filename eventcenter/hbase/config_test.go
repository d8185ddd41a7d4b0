package hbase

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tsuna/gohbase/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestConfigDefaults(t *testing.T) {
	t.Setenv(EnvZooKeeper, "zk1:2181,zk2:2181")
	var c Config
	c.setDefaults()
	if c.ZooKeeper != "zk1:2181,zk2:2181" || c.Namespace != "tidemark" || c.Regions != 16 || c.Now == nil {
		t.Errorf("defaults: %+v", c)
	}
	if c.Retention != 0 || c.Buckets != 0 {
		t.Errorf("Retention and Buckets must stay zero (keep what the namespace records): %v %v", c.Retention, c.Buckets)
	}
	t.Setenv(EnvZooKeeper, "")
	c = Config{}
	c.setDefaults()
	if c.ZooKeeper != DefaultZooKeeper {
		t.Errorf("ZooKeeper without env: %q", c.ZooKeeper)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{ZooKeeper: "zk:2181", Namespace: "tidemark_test", Buckets: 256, Regions: 1}, ""},
		{Config{ZooKeeper: "zk"}, "not host:port"},
		{Config{Namespace: "bad-name"}, "Namespace"},
		{Config{Buckets: 257}, "Buckets"},
		{Config{Buckets: -1}, "Buckets"},
		{Config{Regions: 300}, "Regions"},
		{Config{Retention: time.Millisecond}, "Retention"},
		{Config{Retention: -2}, "Retention"},
		{Config{Retention: Forever}, ""},
		{Config{MaxAppend: -1}, "MaxAppend"},
		{Config{KnownAtLag: 30 * time.Second}, "KnownAtLag"}, // less than the default MaxAppend
		{Config{MaxAppend: 10 * time.Second, KnownAtLag: 30 * time.Second}, ""},
		{Config{KnownAtLag: time.Second, SoleWriter: true}, ""},
		{Config{DialTimeout: -1}, "DialTimeout"},
		{Config{MaxInflight: -1}, "MaxInflight"},
	} {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("Validate(%+v): %v", c.cfg, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("Validate(%+v) = %v, want an error about %s", c.cfg, err, c.want)
		}
	}
}

// TestStoredQualifierOrder: a row's cells sort oldest stamp first, then by
// sequence; the known-at bound takes every cell of its instant and no later.
func TestStoredQualifierOrder(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	quals := [][]byte{
		storedQualifier(time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), 9),
		storedQualifier(base.Add(-time.Nanosecond), 1<<62),
		storedQualifier(base, 0),
		storedQualifier(base, 1),
		storedQualifier(base, 1<<63),
		storedQualifier(base.Add(time.Nanosecond), 0),
		storedQualifier(base.Add(time.Hour), 0),
	}
	for i := 1; i < len(quals); i++ {
		if bytes.Compare(quals[i-1], quals[i]) >= 0 {
			t.Errorf("qualifier %d does not sort after %d", i, i-1)
		}
	}
	max := knownAtFilter(base).(interface{ ConstructPBFilter() (*pb.Filter, error) })
	f, err := max.ConstructPBFilter()
	if err != nil {
		t.Fatal(err)
	}
	var cr pb.ColumnRangeFilter
	if err := proto.Unmarshal(f.SerializedFilter, &cr); err != nil {
		t.Fatal(err)
	}
	for i, q := range quals {
		in := bytes.Compare(q, cr.MaxColumn) <= 0
		if want := i <= 4; in != want {
			t.Errorf("qualifier %d within known-at %v: %v, want %v", i, base, in, want)
		}
	}
}

func TestProcID(t *testing.T) {
	m := &pb.CreateNamespaceResponse{}
	if _, ok := procID(m); ok {
		t.Error("procID of an empty response")
	}
	var raw []byte
	raw = protowire.AppendTag(raw, 7, protowire.BytesType)
	raw = protowire.AppendBytes(raw, []byte("x"))
	raw = protowire.AppendTag(raw, 1, protowire.VarintType)
	raw = protowire.AppendVarint(raw, 4242)
	if err := proto.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	if id, ok := procID(m); !ok || id != 4242 {
		t.Errorf("procID = %d, %v; want 4242", id, ok)
	}
}

func TestSplits(t *testing.T) {
	s := &Store{cfg: Config{Regions: 16}, buckets: 16}
	if got := s.splits(tabTime); len(got) != 15 || got[0][0] != 1 || got[14][0] != 15 {
		t.Errorf("time splits %v", got)
	}
	if got := s.splits(tabEvents); len(got) != 15 || got[0][0] != 16 || got[14][0] != 240 {
		t.Errorf("events splits %v", got)
	}
	if got := s.splits(tabMeta); got != nil {
		t.Errorf("meta splits %v", got)
	}
	s = &Store{cfg: Config{Regions: 4}, buckets: 2}
	if got := s.splits(tabTime); len(got) != 1 || got[0][0] != 1 {
		t.Errorf("time splits with 2 buckets %v", got)
	}
}

// TestOpenDown: with nothing listening at the ZooKeeper address, Open fails
// within the dial timeout and says where it looked.
func TestOpenDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now nothing listens there
	start := time.Now()
	_, err = Open(context.Background(), Config{ZooKeeper: addr, DialTimeout: 3 * time.Second})
	d := time.Since(start)
	if err == nil {
		t.Fatal("Open of a cluster that is down: no error")
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "down") {
		t.Errorf("error does not name the address %s or say the cluster is down: %v", addr, err)
	}
	if d > 3*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
	t.Logf("failed in %v: %v", d, err)
}

// TestOpenNoMaster: a ZooKeeper-like listener that never answers (so not an
// HBase) fails Open within the dial timeout too.
func TestOpenNoMaster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept and say nothing
		}
	}()
	start := time.Now()
	_, err = Open(context.Background(), Config{ZooKeeper: l.Addr().String(), DialTimeout: 2 * time.Second})
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("Open: %v", err)
	}
	if d > 5*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
	t.Logf("failed in %v: %v", d, err)
}
