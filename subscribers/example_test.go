package subscribers_test

import (
	"fmt"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// A subscriber matches a channel when every filter it sets matches; empty filters match all.
func ExampleSubscriber_Matches() {
	sub := &subscribers.Subscriber{ChannelTags: []string{"slack"}, Types: []string{subscribers.TypeUpdateNotification}}
	slack := &channels.Channel{ChannelID: "c1", ChannelTags: []string{"slack", "web"}}
	web := &channels.Channel{ChannelID: "c2", ChannelTags: []string{"web"}}
	fmt.Println(sub.Matches(slack, subscribers.TypeUpdateNotification))
	fmt.Println(sub.Matches(slack, subscribers.TypeRepublishRequest))
	fmt.Println(sub.Matches(web, subscribers.TypeUpdateNotification))
	fmt.Println(subscribers.EndpointID("sub_123"))
	// Output:
	// true
	// false
	// false
	// sub:sub_123
}
