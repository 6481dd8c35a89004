package main

import (
	"database/sql"

	_ "github.com/glebarez/go-sqlite" // registers "sqlite"
)

func sqlOpen(path string) (*sql.DB, error) { return sql.Open("sqlite", path) }
