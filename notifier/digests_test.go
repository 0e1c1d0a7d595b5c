package notifier

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// TestScriptDigestsNamesEveryScript reads scripts.go and migrate.go for every `var x = script(...)`
// and checks ScriptDigests names each one, by its own digest.
func TestScriptDigestsNamesEveryScript(t *testing.T) {
	digests := ScriptDigests()
	byName := map[string]string{}
	for sha, name := range digests {
		byName[name] = sha
	}
	found := 0
	for _, file := range []string{"scripts.go", "migrate.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, v := range vs.Values {
					call, ok := v.(*ast.CallExpr)
					if !ok {
						continue
					}
					if fn, ok := call.Fun.(*ast.Ident); !ok || fn.Name != "script" {
						continue
					}
					found++
					name := vs.Names[i].Name
					sha, ok := byName["notifier."+name]
					if !ok {
						t.Errorf("%s: %s is not in ScriptDigests", file, name)
						continue
					}
					if s := namedScripts[name]; s == nil || s.Hash() != sha {
						t.Errorf("%s: ScriptDigests names another script %s", file, name)
					}
				}
			}
		}
	}
	if found == 0 || found != len(digests) || len(digests) != len(namedScripts) {
		t.Errorf("%d script vars in the source, %d digests, %d named scripts", found, len(digests), len(namedScripts))
	}
}
