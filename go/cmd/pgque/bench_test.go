package main

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestWithDatabase(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:p@127.0.0.1:5433/postgres?sslmode=disable",
		"postgresql://u@h/other?dbname=x&sslmode=disable",
		"host=127.0.0.1 port=5433 user=u dbname=postgres",
		"host=/tmp user=u",
		"",
	} {
		got, err := withDatabase(dsn, "bench_x_1")
		if err != nil {
			t.Fatalf("%q: %v", dsn, err)
		}
		cfg, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Fatalf("%q -> %q: %v", dsn, got, err)
		}
		if cfg.Database != "bench_x_1" {
			t.Errorf("%q -> %q: database %q", dsn, got, cfg.Database)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	all, err := selectScenarios("all")
	if err != nil || len(all) < 3 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	got, err := selectScenarios(" consume,produce ,consume")
	if err != nil || len(got) != 2 || got[0].Name != "consume" || got[1].Name != "produce" {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := selectScenarios("produce,nope"); err == nil {
		t.Error("unknown scenario: no error")
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{12345.678, "tx/s", "12346"},
		{0.91234, "x", "0.91"},
		{42.25, "ms", "42.2"},
		{1.2345, "ms", "1.23"},
		{200000, "events", "200000"},
	} {
		if got := formatValue(c.v, c.unit); got != c.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}
