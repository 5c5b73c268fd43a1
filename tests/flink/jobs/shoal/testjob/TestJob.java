package shoal.testjob;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * The job Shoal's Flink tests submit to a real cluster (tests/flink/cluster.sh builds it into
 * target/flink-jobs/shoal-test-job.jar).
 *
 * <p>Arguments: {@code --mode bounded|endless|fail}, {@code --count N} (bounded: elements, default
 * 1000), {@code --name NAME} (job name, default "shoal-test-job"), {@code --sleep-ms M} (pause per
 * element; default 20 for endless, 0 otherwise), {@code --fail-after N} (fail: elements before the
 * failure, default 10), {@code --checkpoint-ms M} (periodic checkpoints, default off).
 *
 * <p>The source is {@code fromSequence} (a checkpointable FLIP-27 source; Flink 2 has no
 * SourceFunction), so savepoints, stop-with-savepoint and restoring from a savepoint all work.
 * Restarts are switched off, so a failure is final at once.
 */
public final class TestJob {
    public static void main(String[] args) throws Exception {
        String mode = arg(args, "--mode", "bounded");
        String name = arg(args, "--name", "shoal-test-job");
        long count = Long.parseLong(arg(args, "--count", "1000"));
        long sleepMs = Long.parseLong(arg(args, "--sleep-ms", mode.equals("endless") ? "20" : "0"));
        long failAfter = Long.parseLong(arg(args, "--fail-after", "10"));
        long checkpointMs = Long.parseLong(arg(args, "--checkpoint-ms", "0"));

        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        if (checkpointMs > 0) {
            env.enableCheckpointing(checkpointMs);
        }

        long to;
        switch (mode) {
            // bounded: finishes on its own (FINISHED) — the "job ran to completion" case.
            case "bounded": to = count; break;
            // endless: runs until cancelled or stopped — the case for cancel, savepoints,
            // stop-with-savepoint and resuming from a savepoint.
            case "endless": to = Long.MAX_VALUE; break;
            // fail: throws after a few elements (FAILED) — the case for error reporting
            // through /jobs/<id>/exceptions.
            case "fail": to = Long.MAX_VALUE; break;
            default: throw new IllegalArgumentException("unknown --mode " + mode + " (bounded|endless|fail)");
        }
        env.fromSequence(1, to)
                .map(new Step(sleepMs, mode.equals("fail") ? failAfter : -1))
                .name("step")
                .sinkTo(new DiscardingSink<>())
                .name("discard");
        env.execute(name);
    }

    /** Passes elements through, pausing sleepMs on each; throws after failAfter (if >= 0). */
    static final class Step implements MapFunction<Long, Long> {
        private final long sleepMs;
        private final long failAfter;
        private long seen;

        Step(long sleepMs, long failAfter) {
            this.sleepMs = sleepMs;
            this.failAfter = failAfter;
        }

        @Override
        public Long map(Long value) throws Exception {
            if (failAfter >= 0 && ++seen > failAfter) {
                throw new RuntimeException("shoal test job failed on purpose");
            }
            if (sleepMs > 0) {
                Thread.sleep(sleepMs);
            }
            return value;
        }
    }

    private static String arg(String[] args, String key, String fallback) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(key)) {
                return args[i + 1];
            }
        }
        return fallback;
    }
}
