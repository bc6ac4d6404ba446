package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// A database that lost pgque under a running server: every endpoint that
// asks the engine answers 503 not_installed with SQLSTATE 3F000, which
// pgquehttp's errors match as the SDK's ErrNotInstalled.
func TestNotInstalledAnswer(t *testing.T) {
	e := newEnv(t, server.Options{})
	ctx := context.Background()
	for _, sql := range []string{`DROP EXTENSION IF EXISTS pgque`, `DROP SCHEMA IF EXISTS pgque CASCADE`} {
		if _, err := e.sdk.Pool().Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	e.wantError(t, "GET", "/v1/queues", "", 503, "not_installed", "3F000")
	e.wantError(t, "GET", "/v1/queues/q", "", 503, "not_installed", "3F000")
	e.wantError(t, "POST", "/v1/queues/q/events", `{"type": "t"}`, 503, "not_installed", "3F000")
	e.wantError(t, "POST", "/v1/queues/q/consumers/c/receive", `{}`, 503, "not_installed", "3F000")

	c, err := pgquehttp.NewClient(e.http.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(ctx, "q", pgquehttp.Event{Type: "t"})
	var he *pgquehttp.Error
	if !errors.Is(err, pgque.ErrNotInstalled) || !errors.As(err, &he) || he.Code != pgquehttp.CodeNotInstalled {
		t.Fatalf("pgquehttp Send without pgque: %v; want ErrNotInstalled", err)
	}
}
