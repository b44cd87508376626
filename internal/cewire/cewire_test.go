package cewire

import (
	"fmt"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetAttributeAndCheckRequired(t *testing.T) {
	c := NewSourceCache(2)
	ctx := &event.EventContextV1{}
	assert.EqualError(t, CheckRequired(ctx, "kafka", "ce_"), "kafka: header ce_id missing or empty")
	require.NoError(t, SetAttribute(ctx, "id", "1", c))
	require.NoError(t, SetAttribute(ctx, "source", "/a", c))
	assert.EqualError(t, CheckRequired(ctx, "nats", "ce-"), "nats: header ce-type missing or empty")
	require.NoError(t, SetAttribute(ctx, "type", "t", c))
	require.NoError(t, CheckRequired(ctx, "nats", "ce-"))
	require.NoError(t, SetAttribute(ctx, "tenant", "acme", c))
	assert.Equal(t, "acme", ctx.Extensions["tenant"])
	assert.ErrorContains(t, SetAttribute(ctx, "Bad", "x", c), "lower-case")
	assert.ErrorContains(t, SetAttribute(ctx, "time", "yesterday", c), "RFC 3339")
	assert.ErrorContains(t, SetAttribute(ctx, "specversion", "0.3", c), "not supported")
	assert.ErrorContains(t, SetAttribute(ctx, "source", "%zz", c), "URI reference")
}

func TestSourceCacheStaysBounded(t *testing.T) {
	c := NewSourceCache(3)
	for i := 0; i < 10; i++ {
		u, ok := c.Parse(fmt.Sprintf("/s/%d", i))
		require.True(t, ok)
		assert.Equal(t, fmt.Sprintf("/s/%d", i), u.String())
		assert.LessOrEqual(t, len(c.m), 3)
	}
	u, ok := c.ParseBytes([]byte("/s/9"))
	require.True(t, ok)
	assert.Equal(t, "/s/9", u.String())
}

func TestExtensionNames(t *testing.T) {
	for _, name := range []string{"tenant", "a1", "partitionkey", "x"} {
		assert.True(t, ValidExtensionName(name), name)
		assert.Equal(t, -1, InvalidExtensionChar(name), name)
	}
	for name, at := range map[string]int{"": -1, "data": -1, "data_base64": 4, "Tenant": 0, "ten-ant": 3, "tenänt": 3} {
		assert.False(t, ValidExtensionName(name), name)
		assert.Equal(t, at, InvalidExtensionChar(name), name)
	}
	for _, name := range []string{"id", "source", "type", "specversion", "subject", "time", "datacontenttype", "dataschema"} {
		assert.True(t, IsContextAttribute(name), name)
	}
	assert.False(t, IsContextAttribute("tenant"))
}

func TestAMQPAttributeName(t *testing.T) {
	for prop, want := range map[string]string{"cloudEvents_id": "id", "cloudEvents:type": "type", "CLOUDEVENTS_Tenant": "tenant"} {
		name, ok := AMQPAttributeName(prop)
		assert.True(t, ok, prop)
		assert.Equal(t, want, name, prop)
	}
	for _, prop := range []string{"cloudEvents_", "cloudEvents", "cloudEventsXid", "tenant", ""} {
		_, ok := AMQPAttributeName(prop)
		assert.False(t, ok, prop)
	}
}
