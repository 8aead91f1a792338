package docs_test

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The documents' Go examples are compiled and run: each ```go block of
// README.md and docs/*.md is the source of a function in a _test.go file,
// named by the comment on the line before the block,
//
//	<!-- example: tools/client/example_test.go nightlyReport -->
//
// and equal to it (the whole declaration, or its body) up to indentation.
// The function is an Example or Test function, or is called from one in its
// package, so it runs with `go test ./...`.

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

var exampleMarker = regexp.MustCompile(`^<!-- example: (\S+\.go) ([A-Za-z_][A-Za-z0-9_]*) -->$`)

// goBlock is one ```go block of a Markdown file.
type goBlock struct {
	where      string // file:line of the fence
	file, name string // from the marker; empty without one
	text       string
}

// goBlocks returns the ```go blocks of the Markdown file at path.
func goBlocks(t *testing.T, path string) []goBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goBlock
	var cur *goBlock
	var lines []string
	prev := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```go":
			cur = &goBlock{where: fmt.Sprintf("%s:%d", filepath.Base(path), n)}
			if m := exampleMarker.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
				cur.file, cur.name = m[1], m[2]
			}
			lines = nil
		case cur != nil && trimmed == "```":
			cur.text = strings.Join(lines, "\n")
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			lines = append(lines, line)
		}
		if trimmed != "" {
			prev = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// normalize trims trailing blanks, leading and trailing empty lines and the
// indentation common to all lines.
func normalize(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	indent := ""
	first := true
	for _, l := range lines {
		if l == "" {
			continue
		}
		lead := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			indent, first = lead, false
			continue
		}
		for !strings.HasPrefix(lead, indent) {
			indent = indent[:len(indent)-1]
		}
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, indent)
	}
	return strings.Join(lines, "\n")
}

// exampleSource finds function name in the Go file at path (relative to the
// repository) and returns its declaration and its body. It fails unless the
// function runs under `go test`: an Example or Test function, or one called
// from such a function of the same package.
func exampleSource(path, name string) (decl, body string, err error) {
	full := filepath.Join(repoRoot, path)
	src, err := os.ReadFile(full)
	if err != nil {
		return "", "", err
	}
	if !strings.HasSuffix(path, "_test.go") {
		return "", "", fmt.Errorf("%s is not a test file: its functions do not run with go test", path)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, full, src, 0)
	if err != nil {
		return "", "", err
	}
	var fd *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Recv == nil && d.Name.Name == name {
			fd = d
		}
	}
	if fd == nil {
		return "", "", fmt.Errorf("%s has no function %s", path, name)
	}
	if err := runsUnderTest(filepath.Dir(full), f.Name.Name, name); err != nil {
		return "", "", err
	}
	off := func(p token.Pos) int { return fset.Position(p).Offset }
	decl = string(src[off(fd.Pos()):off(fd.End())])
	body = string(src[off(fd.Body.Lbrace)+1 : off(fd.Body.Rbrace)])
	return decl, body, nil
}

// runsUnderTest reports an error unless name is an Example or Test function
// of package pkg in dir, or is called from one.
func runsUnderTest(dir, pkg, name string) error {
	if strings.HasPrefix(name, "Example") || strings.HasPrefix(name, "Test") {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		if f.Name.Name != pkg {
			continue
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil || !(strings.HasPrefix(fd.Name.Name, "Example") || strings.HasPrefix(fd.Name.Name, "Test")) {
				continue
			}
			called := false
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok {
					if id, ok := c.Fun.(*ast.Ident); ok && id.Name == name {
						called = true
					}
				}
				return !called
			})
			if called {
				return nil
			}
		}
	}
	return fmt.Errorf("%s is neither an Example or Test function nor called from one in %s", name, dir)
}

// checkBlock compares a block with the function its marker names.
func checkBlock(b goBlock) error {
	if b.file == "" {
		return fmt.Errorf("%s: a ```go block without an <!-- example: FILE FUNC --> line before it", b.where)
	}
	decl, body, err := exampleSource(b.file, b.name)
	if err != nil {
		return fmt.Errorf("%s: %w", b.where, err)
	}
	got := normalize(b.text)
	if got == normalize(decl) || got == normalize(body) {
		return nil
	}
	return fmt.Errorf("%s differs from %s in %s.\ndocument:\n%s\nsource:\n%s", b.where, b.name, b.file, got, normalize(decl))
}

func TestGoExamplesAreTestedCode(t *testing.T) {
	docs, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range append(docs, filepath.Join(repoRoot, "README.md")) {
		for _, b := range goBlocks(t, path) {
			n++
			if err := checkBlock(b); err != nil {
				t.Error(err)
			}
		}
	}
	if n < 4 { // client.md's four
		t.Fatalf("found %d Go blocks; the scanner is broken", n)
	}
}

// The check fails on a drifted example, an unmarked block and a function
// that never runs.
func TestGoExampleCheckCatchesDrift(t *testing.T) {
	blocks := goBlocks(t, "client.md")
	if len(blocks) == 0 {
		t.Fatal("client.md has no Go block")
	}
	b := blocks[0]
	if err := checkBlock(b); err != nil {
		t.Fatal(err)
	}
	drifted := b
	drifted.text = strings.Replace(b.text, "return nil", "return err", 1)
	if drifted.text == b.text || checkBlock(drifted) == nil {
		t.Fatal("a changed example passed")
	}
	// Indentation alone does not matter.
	shifted := b
	shifted.text = "\t" + strings.ReplaceAll(b.text, "\n", "\n\t") + "\n\n"
	if err := checkBlock(shifted); err != nil {
		t.Fatalf("re-indented: %v", err)
	}
	unmarked := b
	unmarked.file = ""
	if checkBlock(unmarked) == nil {
		t.Fatal("an unmarked block passed")
	}
	if err := runsUnderTest(filepath.Join(repoRoot, "tools/client"), "client_test", "noSuchHelper"); err == nil {
		t.Fatal("a function nothing calls passed")
	}
}
