package dev.kerasmobilevitv2.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A detector file's four standard outputs (TFLite_Detection_PostProcess: boxes, classes, scores, number of
 * detections) to boxes on the image, as {@code mobilevitv2 predict} gives them. The file's boxes are
 * {@code [ymin, xmin, ymax, xmax]} of the model's input; the input is the whole image resized (the aspect
 * not kept), so they are fractions of the image, scaled by its width and height and clipped to it.
 */
public final class Detections {
    private Detections() {
    }

    /** One detection, its box in the image's pixels. */
    public static final class Detection {
        /** The class's index in the model's class names (the file's class output, 0-based). */
        public final int classIndex;
        public final String name;
        public final float score;
        public final float left;
        public final float top;
        public final float right;
        public final float bottom;

        public Detection(int classIndex, String name, float score, float left, float top, float right,
                         float bottom) {
            this.classIndex = classIndex;
            this.name = name;
            this.score = score;
            this.left = left;
            this.top = top;
            this.right = right;
            this.bottom = bottom;
        }

        @Override
        public String toString() {
            return String.format("%s %.2f [%.1f, %.1f, %.1f, %.1f]", name, score, left, top, right, bottom);
        }
    }

    /** A detector's facts, checked: it must output final detections, which is what this app draws. */
    public static void checkDetector(ModelFacts facts) {
        if (facts.task != ModelFacts.Task.DETECTION) {
            throw new IllegalArgumentException("a " + facts.task.name().toLowerCase() + " model, not a detector");
        }
        if (!"detections".equals(facts.outputs)) {
            throw new IllegalArgumentException("the detector outputs '" + facts.outputs + "', not final detections: "
                    + "convert it with `mobilevitv2 convert --outputs detections` (the default)");
        }
    }

    /**
     * The detections scoring at least {@code minScore}, in the file's order (best first), on an image of
     * {@code imageWidth} x {@code imageHeight}. {@code boxes} holds 4 values per detection, {@code classes}
     * and {@code scores} one; {@code count} is the file's number of detections (a float output).
     */
    public static List<Detection> fromOutputs(float[] boxes, float[] classes, float[] scores, float count,
                                              int imageWidth, int imageHeight, ModelFacts facts, float minScore) {
        checkDetector(facts);
        int capacity = Math.min(boxes.length / 4, Math.min(classes.length, scores.length));
        int n = (int) Math.rint(count);
        if (n < 0 || n > capacity) {
            throw new IllegalArgumentException("the file reports " + count + " detections but its outputs hold "
                    + capacity);
        }
        List<Detection> found = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (!(scores[i] >= minScore)) {
                continue;
            }
            int classIndex = (int) Math.rint(classes[i]);
            found.add(new Detection(classIndex, facts.className(classIndex), scores[i],
                    clip(boxes[4 * i + 1] * imageWidth, imageWidth), clip(boxes[4 * i] * imageHeight, imageHeight),
                    clip(boxes[4 * i + 3] * imageWidth, imageWidth), clip(boxes[4 * i + 2] * imageHeight, imageHeight)));
        }
        return Collections.unmodifiableList(found);
    }

    private static float clip(float value, int limit) {
        return Math.min((float) limit, Math.max(0.0f, value));
    }
}
