package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/migrations"
)

// PoolSettings bound the connection pool.
type PoolSettings struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
}

// DB is an open database with its dialect.
type DB struct {
	*gorm.DB
	Dialect migrations.Dialect
	SQL     *sql.DB
	// health notes transient faults so that PostgreSQL connections used
	// before one are pinged before reuse (see connHealth).
	health *connHealth
	// stmts are the hot path's prepared statements.
	stmts *stmtCache
}

// Open connects to the target (what dburl.Parse read from
// GATEHOUSE_DATABASE_URL) and verifies the connection with a ping.
func Open(ctx context.Context, t dburl.Target, pool PoolSettings) (*DB, error) {
	return OpenWrapped(ctx, t, pool, nil)
}

// OpenWrapped is Open with every connection of the pool made through
// wrap(connector): instrumentation sees each call the pool makes to the
// driver (statements, BEGIN, COMMIT), such as the tests that count the
// statements of a refresh. A nil wrap is Open.
func OpenWrapped(ctx context.Context, t dburl.Target, pool PoolSettings, wrap func(driver.Connector) driver.Connector) (*DB, error) {
	var dialector gorm.Dialector
	health := &connHealth{}
	switch t.Dialect {
	case migrations.Postgres:
		pingOpt := stdlib.OptionShouldPing(health.shouldPing)
		if wrap == nil {
			dialector = postgres.New(postgres.Config{DSN: t.DSN, OptionOpenDB: []stdlib.OptionOpenDB{pingOpt}})
			break
		}
		cfg, err := pgx.ParseConfig(t.DSN)
		if err != nil {
			return nil, fmt.Errorf("cannot reach %s database %s: %w", t.Dialect, t.Display, rootCause(err))
		}
		dialector = postgres.New(postgres.Config{Conn: sql.OpenDB(wrap(stdlib.GetConnector(*cfg, pingOpt)))})
	default:
		// SQLite reports a missing folder as "out of memory"; say it plainly.
		if dir := filepath.Dir(t.Display); dir != "" {
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return nil, fmt.Errorf("cannot open sqlite database %s: folder %s does not exist", t.Display, dir)
			}
		}
		if wrap == nil {
			dialector = sqlite.Open(t.DSN)
			break
		}
		d, err := sqliteDriver()
		if err != nil {
			return nil, err
		}
		dialector = &sqlite.Dialector{Conn: sql.OpenDB(wrap(dsnConnector{dsn: t.DSN, driver: d}))}
	}
	g, err := gorm.Open(dialector, &gorm.Config{
		NowFunc:                func() time.Time { return time.Now().UTC() },
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s database %s: %w", t.Dialect, t.Display, rootCause(err))
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database %s: %w", t.Dialect, t.Display, err)
	}
	if err := health.watch(g); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open %s database %s: %w", t.Dialect, t.Display, err)
	}
	if pool.MaxOpenConns > 0 {
		sqlDB.SetMaxOpenConns(pool.MaxOpenConns)
	}
	if pool.MaxIdleConns > 0 {
		sqlDB.SetMaxIdleConns(pool.MaxIdleConns)
	}
	if pool.ConnMaxLifetime > 0 {
		sqlDB.SetConnMaxLifetime(pool.ConnMaxLifetime)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("cannot reach %s database %s: %w", t.Dialect, t.Display, rootCause(err))
	}
	return &DB{DB: g, Dialect: t.Dialect, SQL: sqlDB, health: health, stmts: &stmtCache{db: sqlDB}}, nil
}

// sqliteDriver is the driver the SQLite dialector registered ("sqlite").
func sqliteDriver() (driver.Driver, error) {
	db, err := sql.Open(sqlite.DriverName, "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.Driver(), nil
}

// dsnConnector opens connections of a driver without a connector of its
// own, as database/sql does for sql.Open.
type dsnConnector struct {
	dsn    string
	driver driver.Driver
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.driver }

// Close releases the connection pool.
func (d *DB) Close() error { return d.SQL.Close() }

// rootCause keeps driver errors short for start-up messages: the network
// error when there is one, else the first line.
func rootCause(err error) error {
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return netErr
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		return errors.New(msg[:i])
	}
	return err
}
