package channels_test

import (
	"fmt"

	"github.com/heraldhq/herald/channels"
)

// A filter is parsed once and evaluated on channels; Store.Query does the same on the documents
// its indexes point at.
func ExampleParseFilter() {
	f, err := channels.ParseFilter([]byte(`{"channel_tags": {"$in": ["slack"]}, "channel_metadata.chat_type": {"$ne": "teams"}}`))
	if err != nil {
		panic(err)
	}
	c := &channels.Channel{
		ChannelID:       "slack-sim",
		ChannelTags:     []string{"slack", "test"},
		ChannelMetadata: map[string]any{"endpoint_url": "http://localhost:5001/incoming"},
	}
	fmt.Println(f.Match(c))

	_, err = channels.ParseFilter([]byte(`{"channel_tags": {"$regex": "^sl"}}`))
	fmt.Println(err)
	// Output:
	// true
	// unknown_operator: unknown operator $regex on channel_tags; supported: $eq, $ne, $in, $nin, $all, $exists (and $and, $or at the top level) (field channel_tags)
}
