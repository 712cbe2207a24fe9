package authguard

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestOnlyWayToCheckPasswords: outside this package (and the store that
// implements it), no code calls a two-argument Authenticate(name,
// password) directly: a new way to log in that did would not be counted,
// and would not honour a lockout. Tests are left out (they check the
// store itself).
func TestOnlyWayToCheckPasswords(t *testing.T) {
	root := filepath.Join("..")
	fset := token.NewFileSet()
	var checked int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch rel {
			case "third_party", "authguard", "mailbox", ".git", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Authenticate" && len(call.Args) == 2 {
				t.Errorf("%s: checks a password without the guard (use authguard.Guard.Authenticate)", fset.Position(call.Pos()))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d files looked at: is the module root %s?", checked, root)
	}
}
