package errtext

import (
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestErrorfNamesThePackageOnce(t *testing.T) {
	inner := Errorf("lib: ", nil, "read %q: %w", "x", io.EOF)
	outer := Errorf("lib/ops: ", []string{"lib: "}, "list: %w", inner)
	assert.Equal(t, "lib/ops: list: read \"x\": EOF", outer.Error())
	assert.ErrorIs(t, outer, io.EOF)
	var target *prefixed
	assert.True(t, errors.As(outer, &target))

	two := Errorf("lib: ", nil, "both: %w; %w", io.EOF, io.ErrUnexpectedEOF)
	assert.ErrorIs(t, two, io.ErrUnexpectedEOF, "several %w are all reachable")
	assert.Equal(t, "lib: plain", Errorf("lib: ", nil, "plain").Error())
	assert.Nil(t, Errorf("lib: ", nil, "plain").(*prefixed).Unwrap())
}
