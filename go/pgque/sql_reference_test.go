package pgque_test

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// docs/sql-reference.md documents exactly the engine's public functions:
// each has a section (### name, or several names separated by commas), and
// each such section names a function that exists.  Every public function
// also carries its header as its comment (\df+, obj_description).
func TestSQLReferenceMatchesCatalog(t *testing.T) {
	ctx := context.Background()
	pool := srv.NewPool(t)
	rows, err := pool.Query(ctx, `
		SELECT p.proname, bool_and(obj_description(p.oid, 'pg_proc') IS NOT NULL)
		  FROM pg_proc p WHERE p.pronamespace = 'pgque'::regnamespace AND p.proname !~ '^_'
		 GROUP BY p.proname`)
	if err != nil {
		t.Fatal(err)
	}
	catalog := map[string]bool{}
	for rows.Next() {
		var name string
		var commented bool
		if err := rows.Scan(&name, &commented); err != nil {
			t.Fatal(err)
		}
		catalog[name] = true
		if !commented {
			t.Errorf("pgque.%s (an overload of it) has no comment: give it a header in extension/src", name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(catalog) < 50 {
		t.Fatalf("only %d public functions in the catalog", len(catalog))
	}

	doc, err := os.ReadFile("../../docs/sql-reference.md")
	if err != nil {
		t.Fatal(err)
	}
	name := `[a-z][a-z0-9_]*(\([^)]*\))?`
	section := regexp.MustCompile(`(?m)^### (` + name + `(, ` + name + `)*)$`)
	documented := map[string]bool{}
	for _, m := range section.FindAllStringSubmatch(string(doc), -1) {
		for _, n := range strings.Split(m[1], ", ") {
			n, _, _ = strings.Cut(n, "(")
			documented[n] = true
		}
	}
	var missing, unknown []string
	for n := range catalog {
		if !documented[n] {
			missing = append(missing, n)
		}
	}
	for n := range documented {
		if !catalog[n] {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 {
		t.Errorf("public functions without a section in docs/sql-reference.md: %v", missing)
	}
	if len(unknown) > 0 {
		t.Errorf("docs/sql-reference.md documents functions the engine does not have: %v", unknown)
	}
}
