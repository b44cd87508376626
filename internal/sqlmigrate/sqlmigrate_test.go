package sqlmigrate_test

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/internal/sqlmigrate"
)

func TestLoadOrdersAndChecksNames(t *testing.T) {
	ms, err := sqlmigrate.Load(fstest.MapFS{
		"m/0002_second.sql": {Data: []byte("B")},
		"m/0001_first.sql":  {Data: []byte("A")},
	}, "m")
	require.NoError(t, err)
	assert.Equal(t, []sqlmigrate.Migration{{Version: 1, Name: "first", SQL: "A"}, {Version: 2, Name: "second", SQL: "B"}}, ms)

	_, err = sqlmigrate.Load(fstest.MapFS{"m/first.sql": {}}, "m")
	assert.ErrorContains(t, err, "is not named NNNN_name.sql")
	_, err = sqlmigrate.Load(fstest.MapFS{"m/0001_a.sql": {}, "m/0003_c.sql": {}}, "m")
	assert.ErrorContains(t, err, "not numbered 1..n")
}

func TestPending(t *testing.T) {
	ms := []sqlmigrate.Migration{{Version: 1}, {Version: 2}, {Version: 3}}
	p, err := sqlmigrate.Pending(ms, 0)
	require.NoError(t, err)
	assert.Len(t, p, 3)
	p, err = sqlmigrate.Pending(ms, 2)
	require.NoError(t, err)
	assert.Equal(t, []sqlmigrate.Migration{{Version: 3}}, p)
	p, err = sqlmigrate.Pending(ms, 3)
	require.NoError(t, err)
	assert.Empty(t, p)
	_, err = sqlmigrate.Pending(ms, 4)
	assert.ErrorContains(t, err, "newer than this package's 3")
}
