package hbase

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/hrpc"
	"github.com/tsuna/gohbase/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The master calls this package needs and this gohbase version lacks (its
// CreateTable and friends are bound to the "default" namespace): each is a
// protobuf request of HBase's MasterService sent through the admin client.

// masterCall is an hrpc.Call for one MasterService method.
type masterCall struct {
	mu       sync.Mutex
	ctx      context.Context
	method   string
	req      proto.Message
	resp     proto.Message
	region   hrpc.RegionInfo
	resultch chan hrpc.RPCResult
}

func newMasterCall(ctx context.Context, method string, req, resp proto.Message) *masterCall {
	return &masterCall{ctx: ctx, method: method, req: req, resp: resp, resultch: make(chan hrpc.RPCResult, 1)}
}

func (c *masterCall) Table() []byte                   { return nil }
func (c *masterCall) Name() string                    { return c.method }
func (c *masterCall) Key() []byte                     { return nil }
func (c *masterCall) Region() hrpc.RegionInfo         { return c.region }
func (c *masterCall) SetRegion(r hrpc.RegionInfo)     { c.region = r }
func (c *masterCall) ToProto() proto.Message          { return c.req }
func (c *masterCall) NewResponse() proto.Message      { return c.resp.ProtoReflect().New().Interface() }
func (c *masterCall) ResultChan() chan hrpc.RPCResult { return c.resultch }
func (c *masterCall) Description() string             { return c.method }
func (c *masterCall) Context() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx
}
func (c *masterCall) SetContext(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx = ctx
}

// admin talks to the HBase master.
type admin struct {
	ac  gohbase.AdminClient
	rpc gohbase.RPCClient

	mu     sync.Mutex
	master hrpc.RegionInfo // the admin client's pseudo-region, once a call found it
}

func newAdmin(ac gohbase.AdminClient) *admin {
	return &admin{ac: ac, rpc: ac.(gohbase.RPCClient)}
}

// close closes the connection to the master. (This gohbase's admin client
// panics in Close: it closes a channel only its regular client makes. Its
// connection hangs off the pseudo-region every master call is routed to.)
func (a *admin) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.master != nil {
		if rc := a.master.Client(); rc != nil {
			rc.Close()
		}
	}
}

// call sends one master request and returns its response.
func (a *admin) call(ctx context.Context, method string, req, resp proto.Message) (proto.Message, error) {
	c := newMasterCall(ctx, method, req, resp)
	msg, err := a.rpc.SendRPC(c)
	a.remember(c.Region())
	return msg, err
}

func (a *admin) remember(r hrpc.RegionInfo) {
	if r == nil {
		return
	}
	a.mu.Lock()
	a.master = r
	a.mu.Unlock()
}

// javaException reports whether err is the HBase Java exception class
// (its simple name, e.g. "TableExistsException").
func javaException(err error, class string) bool {
	return err != nil && strings.Contains(err.Error(), "."+class)
}

// procID reads the proc_id (field 1) that HBase 2 returns in responses whose
// message this gohbase version knows without it.
func procID(m proto.Message) (uint64, bool) {
	b := m.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			return v, n >= 0
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
	}
	return 0, false
}

// waitProcedure polls a master procedure until it finishes.
func (a *admin) waitProcedure(ctx context.Context, id uint64) error {
	backoff := 10 * time.Millisecond
	for {
		call := hrpc.NewGetProcedureState(ctx, id)
		msg, err := a.rpc.SendRPC(call)
		a.remember(call.Region())
		if err != nil {
			return err
		}
		res := msg.(*pb.GetProcedureResultResponse)
		switch res.GetState() {
		case pb.GetProcedureResultResponse_NOT_FOUND:
			return nil // finished long ago and forgotten
		case pb.GetProcedureResultResponse_FINISHED:
			if fe := res.GetException(); fe != nil {
				if ge := fe.GetGenericException(); ge != nil {
					return fmt.Errorf("procedure %d: %s: %s", id, ge.GetClassName(), ge.GetMessage())
				}
				return fmt.Errorf("procedure %d failed: %v", id, fe)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

func tableName(ns, table string) *pb.TableName {
	return &pb.TableName{Namespace: []byte(ns), Qualifier: []byte(table)}
}

// ping asks the master for something cheap: the namespace's descriptor.
// It proves the master answers; whether the namespace exists is returned.
func (a *admin) namespaceExists(ctx context.Context, ns string) (bool, error) {
	_, err := a.call(ctx, "GetNamespaceDescriptor",
		&pb.GetNamespaceDescriptorRequest{NamespaceName: proto.String(ns)}, &pb.GetNamespaceDescriptorResponse{})
	switch {
	case err == nil:
		return true, nil
	case javaException(err, "NamespaceNotFoundException"):
		return false, nil
	}
	return false, err
}

func (a *admin) createNamespace(ctx context.Context, ns string) error {
	resp, err := a.call(ctx, "CreateNamespace",
		&pb.CreateNamespaceRequest{NamespaceDescriptor: &pb.NamespaceDescriptor{Name: []byte(ns)}},
		&pb.CreateNamespaceResponse{})
	if javaException(err, "NamespaceExistException") {
		return nil
	}
	if err != nil {
		return err
	}
	if id, ok := procID(resp); ok {
		return a.waitProcedure(ctx, id)
	}
	return nil
}

func (a *admin) deleteNamespace(ctx context.Context, ns string) error {
	resp, err := a.call(ctx, "DeleteNamespace",
		&pb.DeleteNamespaceRequest{NamespaceName: proto.String(ns)}, &pb.DeleteNamespaceResponse{})
	if javaException(err, "NamespaceNotFoundException") {
		return nil
	}
	if err != nil {
		return err
	}
	if id, ok := procID(resp); ok {
		return a.waitProcedure(ctx, id)
	}
	return nil
}

// tables lists the tables of a namespace.
func (a *admin) tables(ctx context.Context, ns string) ([]string, error) {
	resp, err := a.call(ctx, "ListTableNamesByNamespace",
		&pb.ListTableNamesByNamespaceRequest{NamespaceName: proto.String(ns)}, &pb.ListTableNamesByNamespaceResponse{})
	if javaException(err, "NamespaceNotFoundException") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range resp.(*pb.ListTableNamesByNamespaceResponse).GetTableName() {
		out = append(out, string(t.GetQualifier()))
	}
	return out, nil
}

// family describes the one column family of a table.
type family struct {
	ttl         time.Duration // 0: forever
	compression string
}

func (f family) schema() *pb.ColumnFamilySchema {
	ttl := "2147483647" // HBase's FOREVER
	if f.ttl > 0 {
		ttl = strconv.FormatInt(int64(f.ttl/time.Second), 10)
	}
	attrs := map[string]string{
		"VERSIONS":            "1",
		"MIN_VERSIONS":        "0",
		"TTL":                 ttl,
		"BLOOMFILTER":         "ROW",
		"DATA_BLOCK_ENCODING": "FAST_DIFF",
		"COMPRESSION":         f.compression,
		"BLOCKCACHE":          "true",
		"BLOCKSIZE":           "65536",
		"IN_MEMORY":           "false",
		"KEEP_DELETED_CELLS":  "false",
		"REPLICATION_SCOPE":   "0",
	}
	s := &pb.ColumnFamilySchema{Name: []byte(familyName)}
	for k, v := range attrs {
		s.Attributes = append(s.Attributes, &pb.BytesBytesPair{First: []byte(k), Second: []byte(v)})
	}
	return s
}

// createTable creates ns:table unless it exists.
func (a *admin) createTable(ctx context.Context, ns, table string, f family, splits [][]byte) error {
	resp, err := a.call(ctx, "CreateTable", &pb.CreateTableRequest{
		TableSchema: &pb.TableSchema{TableName: tableName(ns, table), ColumnFamilies: []*pb.ColumnFamilySchema{f.schema()}},
		SplitKeys:   splits,
	}, &pb.CreateTableResponse{})
	if javaException(err, "TableExistsException") {
		return nil
	}
	if err != nil {
		return err
	}
	return a.waitProcedure(ctx, resp.(*pb.CreateTableResponse).GetProcId())
}

// familyTTL reads the TTL of ns:table's family (0: forever).
func (a *admin) familyTTL(ctx context.Context, ns, table string) (time.Duration, error) {
	resp, err := a.call(ctx, "GetTableDescriptors",
		&pb.GetTableDescriptorsRequest{TableNames: []*pb.TableName{tableName(ns, table)}}, &pb.GetTableDescriptorsResponse{})
	if err != nil {
		return 0, err
	}
	for _, ts := range resp.(*pb.GetTableDescriptorsResponse).GetTableSchema() {
		for _, cf := range ts.GetColumnFamilies() {
			if string(cf.GetName()) != familyName {
				continue
			}
			for _, at := range cf.GetAttributes() {
				if string(at.GetFirst()) == "TTL" {
					secs, err := strconv.ParseInt(string(at.GetSecond()), 10, 64)
					if err != nil {
						return 0, fmt.Errorf("TTL %q of %s:%s: %w", at.GetSecond(), ns, table, err)
					}
					if secs >= 2147483647 {
						return 0, nil
					}
					return time.Duration(secs) * time.Second, nil
				}
			}
			return 0, nil
		}
	}
	return 0, fmt.Errorf("table %s:%s has no family %q", ns, table, familyName)
}

// modifyFamily replaces the family's schema (an online alter).
func (a *admin) modifyFamily(ctx context.Context, ns, table string, f family) error {
	resp, err := a.call(ctx, "ModifyColumn",
		&pb.ModifyColumnRequest{TableName: tableName(ns, table), ColumnFamilies: f.schema()}, &pb.ModifyColumnResponse{})
	if err != nil {
		return err
	}
	if id, ok := procID(resp); ok {
		return a.waitProcedure(ctx, id)
	}
	return nil
}

// dropTable disables and deletes ns:table if it exists.
func (a *admin) dropTable(ctx context.Context, ns, table string) error {
	resp, err := a.call(ctx, "DisableTable", &pb.DisableTableRequest{TableName: tableName(ns, table)}, &pb.DisableTableResponse{})
	switch {
	case javaException(err, "TableNotFoundException"):
		return nil
	case javaException(err, "TableNotEnabledException"):
	case err != nil:
		return fmt.Errorf("disable %s:%s: %w", ns, table, err)
	default:
		if err := a.waitProcedure(ctx, resp.(*pb.DisableTableResponse).GetProcId()); err != nil {
			return fmt.Errorf("disable %s:%s: %w", ns, table, err)
		}
	}
	resp, err = a.call(ctx, "DeleteTable", &pb.DeleteTableRequest{TableName: tableName(ns, table)}, &pb.DeleteTableResponse{})
	switch {
	case javaException(err, "TableNotFoundException"):
		return nil
	case err != nil:
		return fmt.Errorf("delete %s:%s: %w", ns, table, err)
	}
	return a.waitProcedure(ctx, resp.(*pb.DeleteTableResponse).GetProcId())
}

// errNoMaster wraps a failure to reach the master at start-up.
var errNoMaster = errors.New("no HBase master answered")
