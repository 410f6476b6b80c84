package dev.kerasmobilevitv2.core;

import java.util.Arrays;

/** Running latency figures over the last {@code window} inferences: average and percentiles. */
public final class LatencyStats {
    private final double[] recent;
    private int count;
    private int next;

    public LatencyStats(int window) {
        if (window < 1) {
            throw new IllegalArgumentException("window must be at least 1");
        }
        recent = new double[window];
    }

    public synchronized void add(double milliseconds) {
        recent[next] = milliseconds;
        next = (next + 1) % recent.length;
        count = Math.min(count + 1, recent.length);
    }

    public synchronized int size() {
        return count;
    }

    public synchronized double average() {
        double total = 0.0;
        for (int i = 0; i < count; i++) {
            total += recent[i];
        }
        return count == 0 ? Double.NaN : total / count;
    }

    /** The {@code p}-th percentile, interpolated between ranks as NumPy's default does. */
    public synchronized double percentile(double p) {
        if (count == 0) {
            return Double.NaN;
        }
        double[] sorted = Arrays.copyOf(recent, count);
        Arrays.sort(sorted);
        double rank = p / 100.0 * (count - 1);
        int low = (int) Math.floor(rank);
        int high = Math.min(low + 1, count - 1);
        return sorted[low] + (rank - low) * (sorted[high] - sorted[low]);
    }
}
