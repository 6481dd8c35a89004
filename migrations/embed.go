// Package migrations holds Gatehouse's versioned SQL schema, one set per
// database dialect, embedded in the binary, and applies it with goose.
package migrations

import "embed"

// files holds every migration; the folder name is the dialect.
//
//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS
