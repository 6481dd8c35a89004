// Package migrationstest builds migration sets that stand in for other
// Gatehouse releases: an older one (fewer migrations) or a newer one
// (more), for tests of rolling upgrades with migrations.NewFrom.
package migrationstest

import (
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gatehouse-id/gatehouse/migrations"
)

// Set is a migration set laid out as migrations.Files.
type Set struct{ fstest.MapFS }

// UpTo returns this binary's migrations up to version max (every one
// when max is 0): the migrations of an older release.
func UpTo(t testing.TB, max int64) Set {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(migrations.Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		prefix, _, _ := strings.Cut(path.Base(p), "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil {
			return err
		}
		if max == 0 || v <= max {
			data, err := fs.ReadFile(migrations.Files(), p)
			if err != nil {
				return err
			}
			out[p] = &fstest.MapFile{Data: data}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return Set{out}
}

// Plus returns the set with one more migration, the same SQL for every
// dialect: a newer release's. compatible adds migrations.CompatibleMark.
func (s Set) Plus(version int64, name, up, down string, compatible bool) Set {
	out := fstest.MapFS{}
	for k, v := range s.MapFS {
		out[k] = v
	}
	body := "-- +goose Up\n"
	if compatible {
		body += migrations.CompatibleMark + "\n"
	}
	body += up + "\n-- +goose Down\n" + down + "\n"
	file := strconv.FormatInt(100000+version, 10)[1:] + "_" + name + ".sql"
	for _, d := range []string{"sqlite", "postgres"} {
		out[d+"/"+file] = &fstest.MapFile{Data: []byte(body)}
	}
	return Set{out}
}
