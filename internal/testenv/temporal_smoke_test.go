package testenv_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"
)

func smokeGreet(ctx context.Context, name string) (string, error) { return "hello " + name, nil }

func smokeWorkflow(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, smokeGreet, name).Get(ctx, &out)
	return out, err
}

// TestTemporalSmoke: a workflow with one activity runs on the in-process Temporal server.
// It needs no external service, so it always runs.
func TestTemporalSmoke(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	ts.NewWorker("smoke", func(r worker.Registry) {
		r.RegisterWorkflow(smokeWorkflow)
		r.RegisterActivity(smokeGreet)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run, err := ts.GetDefaultClient().ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "smoke"}, smokeWorkflow, "tidemark")
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if out != "hello tidemark" {
		t.Fatalf("got %q", out)
	}
}
