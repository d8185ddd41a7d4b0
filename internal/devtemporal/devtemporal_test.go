package devtemporal_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/internal/devtemporal"
)

func hello(ctx workflow.Context, name string) (string, error) { return "hello " + name, nil }

// A server on free ports with a database file runs a workflow, its search
// attributes are registered, its UI's HTTP API lists the workflow, and it
// keeps its state across a restart.
func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := filepath.Join(t.TempDir(), "sub", "temporal.db")
	cfg := devtemporal.Config{Addr: "127.0.0.1:0", UIAddr: "127.0.0.1:0", DBFile: db,
		SearchAttributes: map[string]enumspb.IndexedValueType{"TidemarkJob": enumspb.INDEXED_VALUE_TYPE_KEYWORD}}
	srv, err := devtemporal.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.NewClient(ctx, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(c, "hello", worker.Options{})
	w.RegisterWorkflow(hello)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "hello-1", TaskQueue: "hello"}, hello, "tidemark")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil || out != "hello tidemark" {
		t.Fatalf("%q %v", out, err)
	}
	sas, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if sas.GetCustomAttributes()["TidemarkJob"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Fatalf("custom search attributes %v", sas.GetCustomAttributes())
	}
	// The UI's HTTP API, as the browser calls it.
	var list struct {
		Executions []struct {
			Execution struct{ WorkflowID string } `json:"execution"`
		} `json:"executions"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := getJSON(srv.UIURL()+"/api/v1/namespaces/default/workflows", &list)
		if err == nil && len(list.Executions) == 1 && list.Executions[0].Execution.WorkflowID == "hello-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("UI lists %+v (%v)", list, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.Stop()
	c.Close()

	// A second server on the same address fails clearly while the first runs.
	_, err = devtemporal.Start(ctx, devtemporal.Config{Addr: srv.Addr(), UIAddr: "off"})
	if !errors.Is(err, devtemporal.ErrAddrInUse) {
		t.Fatalf("second server on %s: %v", srv.Addr(), err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// Restarted on the same file, the workflow is still there.
	cfg.Addr, cfg.UIAddr = "127.0.0.1:0", "off"
	srv2, err := devtemporal.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop()
	c2, err := srv2.NewClient(ctx, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.GetWorkflow(ctx, "hello-1", "").Get(ctx, &out); err != nil || out != "hello tidemark" {
		t.Fatalf("after restart: %q %v", out, err)
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status + ": " + string(b))
	}
	return json.Unmarshal(b, v)
}
