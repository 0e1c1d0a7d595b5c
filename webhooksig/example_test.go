package webhooksig_test

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald/webhooksig"
)

// A sender signs with a Signer kept per secret; a receiver verifies with the same secret.
func Example() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, err := webhooksig.ParseSecret(secret)
	if err != nil {
		panic(err)
	}
	signer := webhooksig.NewSigner(key)

	body := []byte(`{"test": 2432232314}`)
	sent := time.Unix(1614265330, 0)
	h := http.Header{}
	h.Set(webhooksig.HeaderID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set(webhooksig.HeaderTimestamp, strconv.FormatInt(sent.Unix(), 10))
	h.Set(webhooksig.HeaderSignature, webhooksig.Header("msg_p5jXN8AQM9LWM0D4loKWxJek", sent.Unix(), body, signer))
	fmt.Println(h.Get(webhooksig.HeaderSignature))

	// A receiver would call webhooksig.Verify(secret, r.Header, body, 5*time.Minute); this one
	// checks against the time the message was sent.
	fmt.Println(signer.Verify(h, body, 5*time.Minute, sent.Add(time.Minute)))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// <nil>
}
