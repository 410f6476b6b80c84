package dev.kerasmobilevitv2.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/** The model's output to named classes: dequantize, softmax, top-k. */
public final class Postprocessor {
    private Postprocessor() {
    }

    /** One class of a result. */
    public static final class Prediction {
        public final int index;
        public final String name;
        public final float score;

        public Prediction(int index, String name, float score) {
            this.index = index;
            this.name = name;
            this.score = score;
        }

        @Override
        public String toString() {
            return String.format("%s %.1f%%", name, 100.0f * score);
        }
    }

    /** Integer outputs to floats with the output tensor's scale and zero point: (q - zeroPoint) * scale. */
    public static float[] dequantize(byte[] raw, float scale, int zeroPoint, boolean signed) {
        float[] out = new float[raw.length];
        for (int i = 0; i < raw.length; i++) {
            int q = signed ? raw[i] : raw[i] & 0xff;
            out[i] = (q - zeroPoint) * scale;
        }
        return out;
    }

    /** Class probabilities from a classifier's output: its softmax when the file outputs logits (as its facts
     * say), else the output itself, so that no softmax is applied twice. */
    public static float[] probabilities(float[] scores, ModelFacts facts) {
        return facts.outputsLogits() ? softmax(scores) : scores;
    }

    /** Probabilities from logits. */
    public static float[] softmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float value : logits) {
            max = Math.max(max, value);
        }
        double[] exponentials = new double[logits.length];
        double total = 0.0;
        for (int i = 0; i < logits.length; i++) {
            exponentials[i] = Math.exp(logits[i] - max);
            total += exponentials[i];
        }
        float[] out = new float[logits.length];
        for (int i = 0; i < logits.length; i++) {
            out[i] = (float) (exponentials[i] / total);
        }
        return out;
    }

    /** The {@code k} highest scores, highest first (ties: the lower class index first), with class names. */
    public static List<Prediction> topK(float[] scores, ModelFacts facts, int k) {
        Integer[] order = new Integer[scores.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -scores[i]).thenComparingInt(i -> i));
        List<Prediction> top = new ArrayList<>();
        for (int i = 0; i < Math.min(k, order.length); i++) {
            top.add(new Prediction(order[i], facts.className(order[i]), scores[order[i]]));
        }
        return top;
    }
}
