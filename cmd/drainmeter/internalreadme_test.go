package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestInternalREADME: internal/README.md's first table lists exactly the
// internal packages the binary links, and every internal package is in
// one of its two tables.
func TestInternalREADME(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var linked []string
	for _, p := range strings.Fields(string(out)) {
		if name, ok := strings.CutPrefix(p, "github.com/drainmeter/drainmeter/internal/"); ok {
			linked = append(linked, name)
		}
	}
	readme, err := os.ReadFile("../../internal/README.md")
	if err != nil {
		t.Fatal(err)
	}
	binary, kits, ok := strings.Cut(string(readme), "## Test and tool kits")
	if !ok {
		t.Fatal(`internal/README.md has no "## Test and tool kits" section`)
	}
	documented, kitNames := internalREADMERows(binary), internalREADMERows(kits)
	slices.Sort(linked)
	if !slices.Equal(documented, linked) {
		t.Errorf("internal/README.md says the binary links %v; go list -deps says %v", documented, linked)
	}
	entries, err := os.ReadDir("../../internal")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !slices.Contains(documented, e.Name()) && !slices.Contains(kitNames, e.Name()) {
			t.Errorf("internal/%s is in neither table of internal/README.md", e.Name())
		}
	}
}

var internalREADMERow = regexp.MustCompile("(?m)^\\| `([a-z0-9]+)` +\\|")

// internalREADMERows returns the package names of a Markdown table's rows,
// sorted.
func internalREADMERows(md string) []string {
	var names []string
	for _, m := range internalREADMERow.FindAllStringSubmatch(md, -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return names
}
