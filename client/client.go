// Package client is the Go client of tidemark's HTTP API (package api):
// feature lookups, batches and selections, and calls of jobs. The CLI's
// `features` and `call` commands and the API's tests use it.
//
// Errors the server answers are *api.Problem (match them with errors.As
// and branch on Type or Status); transport errors are returned as they are.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/api"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/serving"
)

// Client calls one API server. Safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as the bearer token (calls need one). Default none.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient uses hc. Default: an http.Client without timeout (a
// call's own timeout bounds its wait; give requests a context deadline).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a client of the server at baseURL, e.g. "http://127.0.0.1:8080".
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), http: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// do sends a request and decodes a JSON answer of an expected status into
// out; it returns the status. Other statuses are errors (*api.Problem when
// the server says why).
func (c *Client) do(ctx context.Context, method, path string, header http.Header, body any, out map[int]any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if v, ok := out[resp.StatusCode]; ok {
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				return 0, nil, fmt.Errorf("client: %s %s: answer %d: %w", method, path, resp.StatusCode, err)
			}
		}
		return resp.StatusCode, resp.Header, nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == api.ContentTypeProblem {
		var p api.Problem
		if err := json.Unmarshal(b, &p); err == nil {
			return resp.StatusCode, resp.Header, &p
		}
	}
	return resp.StatusCode, resp.Header, fmt.Errorf("client: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Features returns the entity's record in the job's feature store: the
// latest if at is zero, else as of at (and as known at knownAt, if not zero).
func (c *Client) Features(ctx context.Context, jobName, entity string, at, knownAt time.Time) (job.Record, error) {
	q := url.Values{}
	if !at.IsZero() {
		q.Set("at", timeString(at))
	}
	if !knownAt.IsZero() {
		q.Set("known_at", timeString(knownAt))
	}
	path := "/v1/features/" + url.PathEscape(jobName) + "/" + url.PathEscape(entity)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var r job.Record
	_, _, err := c.do(ctx, http.MethodGet, path, nil, nil, map[int]any{http.StatusOK: &r})
	return r, err
}

// Batch returns the records of several entities (nil where an entity has
// no features), in their order.
func (c *Client) Batch(ctx context.Context, jobName string, entities []string, at, knownAt time.Time) ([]api.BatchResult, error) {
	var resp api.BatchResponse
	_, _, err := c.do(ctx, http.MethodPost, "/v1/features/"+url.PathEscape(jobName)+":batch", nil,
		api.BatchRequest{Entities: entities, At: timeString(at), KnownAt: timeString(knownAt)}, map[int]any{http.StatusOK: &resp})
	return resp.Results, err
}

// Select returns a page of the entities whose features satisfy req.Where.
func (c *Client) Select(ctx context.Context, jobName string, req api.SelectRequest) (serving.Selection, error) {
	var sel serving.Selection
	_, _, err := c.do(ctx, http.MethodPost, "/v1/features/"+url.PathEscape(jobName)+":select", nil, req, map[int]any{http.StatusOK: &sel})
	return sel, err
}

// CallOptions are the options of a call.
type CallOptions struct {
	// Timeout: how long the server waits for the result. Default: the
	// server's (2s).
	Timeout time.Duration
	// ReplyTo: amqp://exchange/routing-key or kafka://topic. Default none.
	ReplyTo string
	// IdempotencyKey names the call for retries. Default none.
	IdempotencyKey string
}

// CallResult is a call's state: its id, and its record once answered
// (nil: not yet; poll with Poll).
type CallResult struct {
	ID     string
	Record *job.Record
}

// Call calls the job with row as its trigger's row.
func (c *Client) Call(ctx context.Context, jobName string, row map[string]any, o CallOptions) (CallResult, error) {
	q := url.Values{}
	if o.Timeout > 0 {
		q.Set("timeout", o.Timeout.String())
	}
	if o.ReplyTo != "" {
		q.Set("reply_to", o.ReplyTo)
	}
	path := "/v1/calls/" + url.PathEscape(jobName)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	h := http.Header{}
	if o.IdempotencyKey != "" {
		h.Set(api.HeaderIdempotencyKey, o.IdempotencyKey)
	}
	return c.callAnswer(ctx, http.MethodPost, path, h, row)
}

// Poll returns the state of the call id.
func (c *Client) Poll(ctx context.Context, id string) (CallResult, error) {
	return c.callAnswer(ctx, http.MethodGet, "/v1/calls/"+url.PathEscape(id), nil, nil)
}

// Wait polls the call id every interval until it is answered or ctx ends.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration) (job.Record, error) {
	for {
		res, err := c.Poll(ctx, id)
		if err != nil {
			return job.Record{}, err
		}
		if res.Record != nil {
			return *res.Record, nil
		}
		select {
		case <-ctx.Done():
			return job.Record{}, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// callAnswer sends a request answered as a call is: 200 a record, 202 an id.
func (c *Client) callAnswer(ctx context.Context, method, path string, h http.Header, body any) (CallResult, error) {
	var rec job.Record
	var acc api.Accepted
	status, hdr, err := c.do(ctx, method, path, h, body, map[int]any{http.StatusOK: &rec, http.StatusAccepted: &acc})
	if err != nil {
		return CallResult{}, err
	}
	if status == http.StatusAccepted {
		return CallResult{ID: acc.ID}, nil
	}
	return CallResult{ID: hdr.Get("Call-Id"), Record: &rec}, nil
}
