package errtable

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// root is the repository's root, from this package's directory.
const root = "../../.."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sqlstateRE is a SQLSTATE as the docs quote it: five characters, a digit
// among them (PQ001, 42501, 3F000), in backticks.
var sqlstateRE = regexp.MustCompile("`(PQ[0-9]{3}|[0-9][0-9A-Z]{4})`")

func quotedStates(s string) []string {
	var out []string
	for _, m := range sqlstateRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// section returns the text of the Markdown section headed heading, up to
// the next heading of its level or above.
func section(t *testing.T, doc, path, heading string) string {
	t.Helper()
	level := strings.Count(strings.Fields(heading)[0], "#")
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no section %q", path, heading)
	}
	rest := doc[i+len(heading)+2:]
	for _, l := range []string{"\n# ", "\n## ", "\n### "}[:level] {
		if j := strings.Index(rest, l); j >= 0 {
			rest = rest[:j]
		}
	}
	return rest
}

// rows returns the cells of the Markdown table rows in s, header and rule
// left out.
func rows(s string) [][]string {
	var out [][]string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "|---") {
			continue
		}
		var cells []string
		line = strings.ReplaceAll(strings.Trim(line, "|"), `\|`, "/")
		for _, c := range strings.Split(line, "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		out = append(out, cells)
	}
	return out
}

func sqlStates() []string {
	var out []string
	for _, e := range Table {
		if e.SQLState != "" {
			out = append(out, e.SQLState)
		}
	}
	sort.Strings(out)
	return out
}

func sortedSet(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The table is consistent: one entry per SQLSTATE, each with a sentinel
// and an exit status; the HTTP API's own with neither; entries sharing a
// code agree on status and sentinel, and a sentinel has one code.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	codeOf := map[*Sentinel]string{}
	for _, e := range Table {
		switch {
		case e.Name == "" || e.Code == "" || e.Status < 400 || e.Meaning == "":
			t.Errorf("%+v: every entry needs a name, a code, an error status and a meaning", e)
		case e.SQLState != "" && (e.Err == nil || e.Exit == 0):
			t.Errorf("%s: no sentinel or no exit status", e.SQLState)
		case e.SQLState == "" && (e.Err != nil || e.Exit != 0):
			t.Errorf("%s: an error of the HTTP API alone has neither sentinel nor exit status", e.Code)
		case e.SQLState == Internal:
			t.Errorf("%s is the engine's internal code", Internal)
		}
		key := e.SQLState
		if key == "" {
			key = e.Code
		}
		if seen[key] {
			t.Errorf("%s: two entries", key)
		}
		seen[key] = true
		if first := ByCode(e.Code); first.Status != e.Status || first.Err != e.Err {
			t.Errorf("code %s: entries %s and %s differ in status or sentinel", e.Code, first.SQLState, e.SQLState)
		}
		if e.Err != nil {
			if c, ok := codeOf[e.Err]; ok && c != e.Code {
				t.Errorf("%s has codes %s and %s", e.Err.Name, c, e.Code)
			}
			codeOf[e.Err] = e.Code
		}
	}
}

// raisedRE finds the codes the engine raises: RAISE ... USING ERRCODE =
// 'x', and RAISE [level] SQLSTATE 'x'.
var raisedRE = regexp.MustCompile(`(?i)ERRCODE\s*=\s*'([^']+)'|RAISE\s+(?:EXCEPTION\s+)?SQLSTATE\s+'([^']+)'`)

// Every code the engine raises is in the table (by SQLSTATE, or by
// condition name for PostgreSQL's), and every PQ code of the table is
// raised.
func TestEngineCodes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "extension/src/*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no engine sources: %v", err)
	}
	byName := map[string]*Entry{}
	for i := range Table {
		byName[Table[i].Name] = &Table[i]
	}
	raised := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range raisedRE.FindAllStringSubmatch(string(b), -1) {
			code := m[1] + m[2]
			switch {
			case code == Internal:
			case BySQLState(code) != nil:
				raised[code] = true
			case byName[code] != nil && byName[code].SQLState != "":
				raised[byName[code].SQLState] = true
			default:
				t.Errorf("%s raises %s, which the error table does not have", filepath.Base(f), code)
			}
		}
	}
	for _, e := range Table {
		if strings.HasPrefix(e.SQLState, "PQ") && !raised[e.SQLState] {
			t.Errorf("%s is in the table, but the engine never raises it", e.SQLState)
		}
	}
}

// docs/sql-reference.md's "SQLSTATE codes" lists exactly the table's codes.
func TestSQLReference(t *testing.T) {
	const path = "docs/sql-reference.md"
	doc := section(t, read(t, path), path, "## SQLSTATE codes")
	listed := map[string]bool{}
	for _, r := range rows(doc) {
		if s := quotedStates(r[0]); len(s) == 1 && r[0] == "`"+s[0]+"`" {
			if listed[s[0]] {
				t.Errorf("%s: %s listed twice", path, s[0])
			}
			listed[s[0]] = true
		}
	}
	if got, want := sortedSet(listed), sqlStates(); !slices.Equal(got, want) {
		t.Errorf("%s, SQLSTATE codes: %v; the error table has %v", path, got, want)
	}
}

// docs/http.md's error table answers each code with the table's status
// and SQLSTATEs, and lists every code and SQLSTATE.
func TestHTTPDoc(t *testing.T) {
	const path = "docs/http.md"
	doc := section(t, read(t, path), path, "## Errors")
	codes, states := map[string]bool{}, map[string]bool{}
	for _, r := range rows(doc) {
		if len(r) != 4 || r[0] == "HTTP" {
			continue
		}
		status, err := strconv.Atoi(r[0])
		code := strings.Trim(r[1], "`")
		e := ByCode(code)
		switch {
		case err != nil || e == nil:
			t.Errorf("%s: row %q: not a status and a code of the table", path, r[:2])
			continue
		case status != e.Status:
			t.Errorf("%s: %s answers %d, the table says %d", path, code, status, e.Status)
		}
		codes[code] = true
		for _, s := range quotedStates(r[2]) {
			if se := BySQLState(s); se == nil || se.Code != code {
				t.Errorf("%s: %s with SQLSTATE %s, which the table does not answer with it", path, code, s)
			}
			states[s] = true
		}
	}
	for _, e := range Table {
		if !codes[e.Code] {
			t.Errorf("%s does not list code %s", path, e.Code)
		}
		if e.SQLState != "" && !states[e.SQLState] {
			t.Errorf("%s does not list SQLSTATE %s (code %s)", path, e.SQLState, e.Code)
		}
	}
}

// docs/operations.md's exit statuses give each SQLSTATE the table's.
func TestExitDoc(t *testing.T) {
	const path = "docs/operations.md"
	doc := read(t, path)
	i := strings.Index(doc, "| status | meaning |")
	if i < 0 {
		t.Fatalf("%s has no exit status table", path)
	}
	doc = doc[i:]
	doc = doc[:strings.Index(doc, "\n\n")]
	listed := map[string]bool{}
	for _, r := range rows(doc)[1:] {
		status, err := strconv.Atoi(r[0])
		if err != nil {
			t.Fatalf("%s: exit status %q", path, r[0])
		}
		for _, s := range quotedStates(r[1]) {
			if e := BySQLState(s); e == nil || e.Exit != status {
				t.Errorf("%s: %s under exit status %d; the table says %+v", path, s, status, e)
			}
			listed[s] = true
		}
	}
	if got, want := sortedSet(listed), sqlStates(); !slices.Equal(got, want) {
		t.Errorf("%s, exit statuses: %v; the error table has %v", path, got, want)
	}
}

// docs/go.md's sentinel table names each sentinel's SQLSTATEs as the table
// does.
func TestGoDoc(t *testing.T) {
	const path = "docs/go.md"
	doc := section(t, read(t, path), path, "## Errors")
	want := map[string][]string{}
	for _, e := range Table {
		if e.Err != nil {
			want[e.Err.Name] = append(want[e.Err.Name], e.SQLState)
		}
	}
	found := map[string]bool{}
	for _, r := range rows(doc) {
		name := strings.Trim(r[0], "`")
		if len(r) < 3 || !strings.HasPrefix(name, "Err") {
			continue
		}
		got := quotedStates(r[1])
		w, ok := want[name]
		if !ok {
			if len(got) != 0 {
				t.Errorf("%s: %s has SQLSTATEs %v, but no entry in the table", path, name, got)
			}
			continue
		}
		sort.Strings(got)
		sort.Strings(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s: %s matches %v; the table says %v", path, name, got, w)
		}
		found[name] = true
	}
	for name := range want {
		if !found[name] {
			t.Errorf("%s does not list %s", path, name)
		}
	}
}

// reexports returns the package-level names of file declared as
// errtable.<same name>, with their line comments.
func reexports(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, path), nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range g.Specs {
			vs, ok := spec.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
				continue
			}
			sel, ok := vs.Values[0].(*ast.SelectorExpr)
			if !ok || sel.X.(*ast.Ident).Name != "errtable" {
				continue
			}
			if sel.Sel.Name != vs.Names[0].Name {
				t.Errorf("%s: %s = errtable.%s: the names differ", path, vs.Names[0].Name, sel.Sel.Name)
			}
			out[vs.Names[0].Name] = vs.Comment.Text()
		}
	}
	return out
}

// The SDK exports every sentinel under its name, its comment naming its
// SQLSTATEs; pgquehttp exports every API code.
func TestReexports(t *testing.T) {
	sdk := reexports(t, "go/pgque/errors.go")
	states := map[string][]string{}
	for _, e := range Table {
		if e.Err != nil {
			states[e.Err.Name] = append(states[e.Err.Name], e.SQLState)
		}
	}
	for name, want := range states {
		comment, ok := sdk[name]
		got := strings.Fields(strings.ReplaceAll(comment, ",", " "))
		sort.Strings(got)
		sort.Strings(want)
		if !ok || !slices.Equal(got, want) {
			t.Errorf("go/pgque/errors.go: %s (exported %v) has comment %q; want the SQLSTATEs %v", name, ok, comment, want)
		}
	}
	if len(sdk) != len(states) {
		t.Errorf("go/pgque/errors.go exports %d sentinels of the table, which has %d", len(sdk), len(states))
	}

	f, err := parser.ParseFile(token.NewFileSet(), "errtable.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{} // Code... constants and their values
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && strings.HasPrefix(vs.Names[0].Name, "Code") && len(vs.Values) == 1 {
			if lit, ok := vs.Values[0].(*ast.BasicLit); ok {
				consts[vs.Names[0].Name], _ = strconv.Unquote(lit.Value)
			}
		}
		return true
	})
	http := reexports(t, "go/pgquehttp/types.go")
	values := map[string]bool{}
	for name, v := range consts {
		values[v] = true
		if _, ok := http[name]; !ok {
			t.Errorf("go/pgquehttp/types.go does not export %s", name)
		}
	}
	for _, e := range Table {
		if !values[e.Code] {
			t.Errorf("code %q of the table is no Code constant", e.Code)
		}
	}
}
