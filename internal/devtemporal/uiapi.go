package devtemporal

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// UIWorkflow is a workflow as the Web UI's HTTP API lists it.
type UIWorkflow struct {
	ID     string
	RunID  string
	Type   string
	Status string // e.g. "WORKFLOW_EXECUTION_STATUS_RUNNING"
	// SearchAttributes and Memo hold the decoded JSON payloads.
	SearchAttributes map[string]json.RawMessage
	Memo             map[string]json.RawMessage
}

// ListUIWorkflows asks the Web UI's HTTP API at uiURL (e.g.
// "http://127.0.0.1:8233") for the workflows of namespace matching the
// visibility query (e.g. `WorkflowId="x"`; "" for all), as the UI's
// workflow list does: GET /api/v1/namespaces/{namespace}/workflows?query=…
func ListUIWorkflows(ctx context.Context, uiURL, namespace, query string) ([]UIWorkflow, error) {
	u := uiURL + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/workflows"
	if query != "" {
		u += "?query=" + url.QueryEscape(query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("devtemporal: GET %s: %s: %s", u, resp.Status, body)
	}
	var list struct {
		Executions []struct {
			Execution struct {
				WorkflowID string `json:"workflowId"`
				RunID      string `json:"runId"`
			} `json:"execution"`
			Type struct {
				Name string `json:"name"`
			} `json:"type"`
			Status           string `json:"status"`
			SearchAttributes struct {
				IndexedFields map[string]json.RawMessage `json:"indexedFields"`
			} `json:"searchAttributes"`
			Memo struct {
				Fields map[string]json.RawMessage `json:"fields"`
			} `json:"memo"`
		} `json:"executions"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("devtemporal: GET %s: %w", u, err)
	}
	out := make([]UIWorkflow, 0, len(list.Executions))
	for _, e := range list.Executions {
		w := UIWorkflow{ID: e.Execution.WorkflowID, RunID: e.Execution.RunID, Type: e.Type.Name, Status: e.Status,
			SearchAttributes: map[string]json.RawMessage{}, Memo: map[string]json.RawMessage{}}
		for k, p := range e.SearchAttributes.IndexedFields {
			w.SearchAttributes[k] = payloadJSON(p)
		}
		for k, p := range e.Memo.Fields {
			w.Memo[k] = payloadJSON(p)
		}
		out = append(out, w)
	}
	return out, nil
}

// payloadJSON returns the JSON a payload holds: either a full payload
// ({"metadata":{…},"data":"<base64>"}) or the shorthand (the value itself).
func payloadJSON(raw json.RawMessage) json.RawMessage {
	var p struct {
		Metadata map[string]string `json:"metadata"`
		Data     *string           `json:"data"`
	}
	if json.Unmarshal(raw, &p) == nil && p.Data != nil && p.Metadata != nil {
		if b, err := base64.StdEncoding.DecodeString(*p.Data); err == nil {
			return b
		}
	}
	return raw
}
