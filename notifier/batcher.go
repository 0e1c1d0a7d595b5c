package notifier

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher shares Redis round trips between concurrent tries. finish blocks its caller until
// the try is recorded, but the finishes that arrive while a call is in flight go out together
// as one finish script call. EvalSha likewise pipelines the calls that arrive together. With
// hundreds of tries in flight this turns hundreds of round trips (each a pair of syscalls on both
// sides) into a few. It implements the Scripter interface that go-redis scripts and redis_rate
// take, so the rate limiter's own script is pipelined this way; the other methods go straight
// to Redis.
type batcher struct {
	rdb redis.UniversalClient
	ch  chan *batchCall
	// fin carries finish calls: those that arrive together go out as ONE finish script call (the
	// script takes many tries), which saves Redis a script invocation per try.
	fin    chan *finishCall
	stream string // the stream key (KEYS[1] of the finish script)
	prefix string // the key prefix (ARGV[1])
	fixed  finishFixed

	mu      sync.Mutex
	running bool
	wg      sync.WaitGroup
}

type batchCall struct {
	cmd  *redis.Cmd
	done chan struct{}
}

const maxBatch = 128

// finishCall is one try's finish: its item of the finish script and the answer. A worker keeps
// one for all its tries (newFinishCall).
type finishCall struct {
	item finishItem
	res  int64
	err  error
	done chan struct{} // one place: signalled when res or err is set
}

func newBatcher(rdb redis.UniversalClient, queue int, k keys, fixed finishFixed) *batcher {
	return &batcher{rdb: rdb, ch: make(chan *batchCall, queue), fin: make(chan *finishCall, queue),
		stream: k.stream(), prefix: k.p, fixed: fixed}
}

func (b *batcher) start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running = true
	b.wg.Add(2)
	go b.loop()
	go b.finishLoop()
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
	close(b.fin)
	b.wg.Wait()
}

func (b *batcher) loop() {
	defer b.wg.Done()
	batch := make([]*batchCall, 0, maxBatch)
	for first := range b.ch {
		batch = gather(b.ch, append(batch[:0], first))
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

// newFinishCall returns a call for finish; one caller may reuse it for one finish at a time.
func newFinishCall() *finishCall { return &finishCall{done: make(chan struct{}, 1)} }

// finish records one try together with the finishes that arrive meanwhile, through c. It
// returns the script's answer for this try (1 recorded, 0 stale).
func (b *batcher) finish(c *finishCall, item finishItem) (int64, error) {
	c.item, c.res, c.err = item, 0, nil
	b.fin <- c
	<-c.done
	return c.res, c.err
}

func (b *batcher) finishLoop() {
	defer b.wg.Done()
	batch := make([]*finishCall, 0, maxBatch)
	for first := range b.fin {
		batch = gather(b.fin, append(batch[:0], first))
		args := finishArgv(b.prefix, b.fixed, batch)
		ctx, cancel := context.WithTimeout(context.Background(), redisCallTimeout)
		res, err := finishScript.Run(ctx, b.rdb, []string{b.stream}, args...).Int64Slice()
		cancel()
		if err == nil && len(res) != len(batch) {
			err = errors.New("unexpected answer from the finish script")
		}
		for i, c := range batch {
			if err != nil {
				c.err = err
			} else {
				c.res = res[i]
			}
			c.done <- struct{}{}
		}
	}
}

// gather adds to batch what ch holds already, without waiting, up to maxBatch.
func gather[T any](ch <-chan T, batch []T) []T {
	for len(batch) < maxBatch {
		select {
		case c, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, c)
		default:
			return batch
		}
	}
	return batch
}
