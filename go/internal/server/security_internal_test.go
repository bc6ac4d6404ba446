package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgquehttp"
)

// A value JSON cannot hold (a time past year 9999, such as a schedule's
// next run) is answered 500 with the error body, never a partial or empty
// 200.
func TestWriteJSONNeverPartial(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := s.errors(func(w http.ResponseWriter, _ *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]any{"next_run": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/schedules", nil))
	var eb pgquehttp.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); rec.Code != 500 || err != nil || eb.Error.Code != pgquehttp.CodeInternal {
		t.Errorf("got %d %q (%v)", rec.Code, rec.Body.String(), err)
	}
}
