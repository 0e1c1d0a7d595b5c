package notifier

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher pipelines the script calls of concurrent tries: EvalSha blocks its caller until the
// call has run, but the calls that arrive while a pipeline is in flight go out together in the
// next one. With hundreds of tries in flight this turns hundreds of round trips (each a pair of
// syscalls on both sides) into a few. It implements the Scripter interface that go-redis
// scripts and redis_rate take, so the rate limiter's own script is batched too; the other
// methods go straight to Redis.
type batcher struct {
	rdb redis.UniversalClient
	ch  chan *batchCall

	mu      sync.Mutex
	running bool
	wg      sync.WaitGroup
}

type batchCall struct {
	cmd  *redis.Cmd
	done chan struct{}
}

const maxBatch = 128

func newBatcher(rdb redis.UniversalClient, queue int) *batcher {
	return &batcher{rdb: rdb, ch: make(chan *batchCall, queue)}
}

func (b *batcher) start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running = true
	b.wg.Add(1)
	go b.loop()
}

// stop ends the loop once every call sent before has run. No call may be made after it.
func (b *batcher) stop() {
	b.mu.Lock()
	if !b.running {
		b.mu.Unlock()
		return
	}
	b.running = false
	b.mu.Unlock()
	close(b.ch)
	b.wg.Wait()
}

func (b *batcher) loop() {
	defer b.wg.Done()
	batch := make([]*batchCall, 0, maxBatch)
	for first := range b.ch {
		batch = append(batch[:0], first)
	more:
		for len(batch) < maxBatch {
			select {
			case c, ok := <-b.ch:
				if !ok {
					break more
				}
				batch = append(batch, c)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), redisCallTimeout)
		pipe := b.rdb.Pipeline()
		for _, c := range batch {
			_ = pipe.Process(ctx, c.cmd)
		}
		_, _ = pipe.Exec(ctx) // each command keeps its own result or error
		cancel()
		for _, c := range batch {
			close(c.done)
		}
	}
}

// EvalSha runs through the next pipeline.
func (b *batcher) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", sha1, len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	c := &batchCall{cmd: redis.NewCmd(ctx, cmdArgs...), done: make(chan struct{})}
	b.ch <- c
	<-c.done
	return c.cmd
}

func (b *batcher) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return b.rdb.Eval(ctx, script, keys, args...)
}

func (b *batcher) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return b.rdb.EvalRO(ctx, script, keys, args...)
}

func (b *batcher) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return b.rdb.EvalShaRO(ctx, sha1, keys, args...)
}

func (b *batcher) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return b.rdb.ScriptExists(ctx, hashes...)
}

func (b *batcher) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return b.rdb.ScriptLoad(ctx, script)
}

func (b *batcher) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return b.rdb.Del(ctx, keys...)
}
