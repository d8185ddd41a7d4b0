package console_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/console"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
)

// silentBroker accepts connections and never answers, as a Kafka broker
// that hangs; it returns its address.
func silentBroker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never written
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestSlowKafka: with a broker that does not answer, the jobs and sources
// pages answer within a small multiple of KafkaTimeout and say the
// consumer lag and the dead letters are unknown.
func TestSlowKafka(t *testing.T) {
	ctx := context.Background()
	store, err := embedded.Open(embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	j, err := credit.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Publish(ctx, store, j); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.OpenTokenStore(filepath.Join(t.TempDir(), "tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := tokens.Create(auth.Principal{ID: "op", Grants: []auth.Grant{{Role: auth.RoleOperator}}})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 100 * time.Millisecond
	con, err := console.New(console.Config{Store: store, Auth: tokens, API: http.NotFoundHandler(), Brokers: []string{silentBroker(t)},
		KafkaTimeout: timeout, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(con.Close)
	mux := http.NewServeMux()
	con.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, c := range []struct{ path, want string }{
		{"/jobs", `<td class="lag">unknown (Kafka did not answer within 100ms)</td>`},
		{"/jobs", `<td class="failed unknown">unknown (Kafka did not answer within 100ms)</td>`},
		{"/sources", `<p class="unknown">unknown (Kafka did not answer within 100ms)</p>`},
		{"/sources", `<span class="ingest-lag">unknown (Kafka did not answer within 100ms)</span>`},
	} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.AddCookie(&http.Cookie{Name: console.CookieName, Value: token})
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), c.want) {
			t.Errorf("GET %s: %s, want 200 with %s:\n%s", c.path, resp.Status, c.want, body)
		}
		if took > 5*timeout {
			t.Errorf("GET %s took %v with a silent broker, want about the Kafka timeout (%v)", c.path, took, timeout)
		}
	}
}
