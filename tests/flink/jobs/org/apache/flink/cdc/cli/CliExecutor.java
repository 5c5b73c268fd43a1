package org.apache.flink.cdc.cli;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * A stand-in for the Flink CDC dist jar's entry point, for Shoal's tests (tests/flink/cluster.sh
 * builds it into target/flink-jobs/flink-cdc-dist-standin.jar). No Flink CDC artifacts can be had
 * here, so real change capture cannot be tested; this lets the CDC task's lifecycle be tested
 * against real Flink instead: submit, track, cancel, savepoint, stop with savepoint, resume.
 *
 * <p>args[0] is the pipeline YAML text. The job is named after {@code pipeline.name} (default
 * "Flink CDC Pipeline Job", as in Flink CDC) and uses {@code pipeline.parallelism} if set. It
 * captures nothing: it runs an endless, throttled, checkpointable sequence until cancelled or
 * stopped. The YAML is read line by line (snakeyaml is not on Flink's classpath un-shaded): only
 * the top-level {@code pipeline:} block's direct {@code name:} and {@code parallelism:} keys.
 */
public final class CliExecutor {
    public static void main(String[] args) throws Exception {
        if (args.length == 0 || args[0].isBlank()) {
            throw new IllegalArgumentException("expected the pipeline YAML text as the first argument");
        }
        String name = pipelineKey(args[0], "name");
        String parallelism = pipelineKey(args[0], "parallelism");

        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        if (parallelism != null) {
            env.setParallelism(Integer.parseInt(parallelism));
        }
        env.fromSequence(1, Long.MAX_VALUE)
                .map(new Throttle())
                .name("standin-pipeline")
                .sinkTo(new DiscardingSink<>())
                .name("discard");
        env.execute(name != null ? name : "Flink CDC Pipeline Job");
    }

    /** The value of key directly under the top-level "pipeline:" block, or null. */
    static String pipelineKey(String yaml, String key) {
        boolean inPipeline = false;
        int indent = -1;
        for (String line : yaml.split("\r?\n")) {
            String trimmed = line.strip();
            if (trimmed.isEmpty() || trimmed.startsWith("#")) {
                continue;
            }
            int lead = line.length() - line.stripLeading().length();
            if (lead == 0) {
                inPipeline = trimmed.equals("pipeline:") || trimmed.startsWith("pipeline: #");
                indent = -1;
                continue;
            }
            if (!inPipeline) {
                continue;
            }
            if (indent < 0) {
                indent = lead; // the indentation of the block's own keys
            }
            if (lead == indent && trimmed.startsWith(key + ":")) {
                return scalar(trimmed.substring(key.length() + 1).strip());
            }
        }
        return null;
    }

    /** A plain or quoted YAML scalar, without a trailing comment. */
    private static String scalar(String v) {
        if (v.length() >= 2 && (v.charAt(0) == '"' || v.charAt(0) == '\'')) {
            int end = v.indexOf(v.charAt(0), 1);
            if (end > 0) {
                return v.substring(1, end);
            }
        }
        int hash = v.indexOf(" #");
        if (hash >= 0) {
            v = v.substring(0, hash).strip();
        }
        return v.isEmpty() ? null : v;
    }

    /** Paces the endless sequence so it costs next to no CPU. */
    static final class Throttle implements MapFunction<Long, Long> {
        @Override
        public Long map(Long value) throws Exception {
            Thread.sleep(20);
            return value;
        }
    }
}
