// Package sqlmigrate reads the numbered SQL migrations that stores/sqlite
// and stores/postgres embed, and tells which of them a database still
// needs. Each store applies them in its own dialect: postgres all in one
// transaction under an advisory lock, sqlite each in a transaction of its
// own.
package sqlmigrate

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one schema change: the file NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads the migrations in dir of fsys, in version order. Files are
// named NNNN_name.sql and numbered 1..n without gaps.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations are not numbered 1..n: found %d at index %d", m.Version, i)
		}
	}
	return out, nil
}

// Pending returns the migrations that a database at schema version have
// still needs. A database newer than the migrations is refused: the program
// is older than the schema it would work on.
func Pending(ms []Migration, have int) ([]Migration, error) {
	if have > len(ms) {
		return nil, fmt.Errorf("the database schema is at version %d, newer than this package's %d; upgrade the program", have, len(ms))
	}
	return ms[max(have, 0):], nil
}
