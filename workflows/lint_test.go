package workflows_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Workflows must be deterministic: they may not import a network, storage
// or OS package, nor read the clock, sleep, draw random numbers, start
// goroutines or use channels and select (workflow.Go, workflow.Channel,
// workflow.Selector exist for that). This test reads the package's
// non-test sources and reports each violation with its position.
func TestWorkflowsStayDeterministic(t *testing.T) {
	allowed := map[string]bool{
		"encoding/json": true, "errors": true, "fmt": true, "math": true, "slices": true, "sort": true,
		"strconv": true, "strings": true, "time": true,
		"go.temporal.io/sdk/workflow": true, "go.temporal.io/sdk/temporal": true, "go.temporal.io/sdk/log": true,
		"go.temporal.io/api/enums/v1": true, // constants (child workflow options)
		// The activity types, called through a nil pointer, and pure helpers.
		"github.com/tidemark-dev/tidemark/activities":  true,
		"github.com/tidemark-dev/tidemark/eventcenter": true,
		"github.com/tidemark-dev/tidemark/params":      true,
	}
	banned := map[string]map[string]bool{ // package -> functions
		"time": {"Now": true, "Sleep": true, "After": true, "AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true, "Since": true, "Until": true},
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		local := map[string]string{} // import name -> path
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[path] {
				t.Errorf("%s: workflows may not import %q (not deterministic, or I/O): move that work to an activity", fset.Position(imp.Pos()), path)
			}
			n := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				n = imp.Name.Name
			}
			local[n] = path
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement: use workflow.Go", fset.Position(n.Pos()))
			case *ast.SelectStmt:
				t.Errorf("%s: select: use workflow.Selector", fset.Position(n.Pos()))
			case *ast.SendStmt:
				t.Errorf("%s: channel send: use workflow.Channel", fset.Position(n.Pos()))
			case *ast.UnaryExpr:
				if n.Op == token.ARROW {
					t.Errorf("%s: channel receive: use workflow.Channel", fset.Position(n.Pos()))
				}
			case *ast.ChanType:
				t.Errorf("%s: channel type: use workflow.Channel", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && banned[local[id.Name]][n.Sel.Name] {
					t.Errorf("%s: %s.%s: use workflow.Now / workflow.Sleep / workflow.NewTimer", fset.Position(n.Pos()), id.Name, n.Sel.Name)
				}
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no workflow sources found")
	}
}
