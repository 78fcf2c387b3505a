package deploycheck

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// markdownAnchors returns the anchors GitHub gives the headings of a
// Markdown document: lower case, punctuation other than - and _ dropped,
// spaces to -, duplicates numbered.
func markdownAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	counts := map[string]int{}
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := counts[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		counts[a]++
	}
	return anchors
}

func statRepo(t *testing.T, rel string) (os.FileInfo, error) {
	t.Helper()
	return os.Stat(repoPath(t, rel))
}

func TestRunbookCoversTheOperationsAndItsLinksResolve(t *testing.T) {
	md := readRepoFile(t, "docs/operations.md")
	anchors := markdownAnchors(md)
	// The situations the runbook must cover (issue 6), by section.
	for _, section := range []string{
		"loader-lag-high", "wal-disk-near-full", "database-down", "s3-credentials-rejected",
		"replay-after-a-database-restore", "rotating-collector_secret_key", "adding-a-node",
		"draining-a-node-before-removing-it", "beyond-one-postgresql", "stopping-gracefully",
	} {
		if !anchors[section] {
			t.Errorf("docs/operations.md has no section #%s", section)
		}
	}
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(md, -1) {
		if !anchors[m[1]] {
			t.Errorf("docs/operations.md links to #%s, which is not a heading", m[1])
		}
	}
	for _, needle := range []string{
		"collector lag", "collector wal inspect", "collector wal dump", "collector wal verify",
		"collector replay --from", "--wal-dir", "collector secret encrypt", "collector migrate",
		"COLLECTOR_PREVIOUS_SECRET_KEY", "WAL_DIR", "Citus", "partition",
	} {
		if !strings.Contains(md, needle) {
			t.Errorf("docs/operations.md never mentions %q", needle)
		}
	}
	// Every file the runbook points at exists.
	for _, m := range regexp.MustCompile("`((?:deploy|docs)/[A-Za-z0-9_./-]+|docker-compose\\.yml|\\.env\\.example)`").FindAllStringSubmatch(md, -1) {
		if p := strings.TrimSuffix(m[1], "/"); p != "" {
			if _, err := statRepo(t, p); err != nil {
				t.Errorf("docs/operations.md refers to %s: %v", m[1], err)
			}
		}
	}
}
