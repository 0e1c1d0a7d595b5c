package channels

import "errors"

// Channel is seed 000's ChannelStoreObject, exactly as it is stored and served.
type Channel struct {
	ChannelID          string         `json:"channel_id"`
	ChannelName        string         `json:"channel_name"`
	ChannelDescription string         `json:"channel_description"`
	ChannelMetadata    map[string]any `json:"channel_metadata"`
	ChannelTags        []string       `json:"channel_tags"`
}

// EndpointURL returns channel_metadata.endpoint_url ("" when absent or not a string).
func (c *Channel) EndpointURL() string {
	s, _ := c.ChannelMetadata["endpoint_url"].(string)
	return s
}

// ChatType returns channel_metadata.chat_type, or nil when absent: notifications carry it as
// "chat_type" and send null when the channel has none.
func (c *Channel) ChatType() any {
	v, ok := c.ChannelMetadata["chat_type"]
	if !ok {
		return nil
	}
	return v
}

var (
	// ErrNotFound: no channel has that id.
	ErrNotFound = errors.New("channels: channel not found")
	// ErrExists: a channel with that id already exists.
	ErrExists = errors.New("channels: channel already exists")
)
