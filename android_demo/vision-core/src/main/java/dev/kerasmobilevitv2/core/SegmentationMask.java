package dev.kerasmobilevitv2.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The class of every pixel of an image, from a segmenter's output, as {@code mobilevitv2 predict} makes
 * it: logits (at the head's resolution or the input size) resized bilinearly with aligned corners to the
 * image and their argmax, or a file's category mask resized to the image (nearest). The segmenter's input
 * is the whole image resized, so its output covers the whole image whatever the image's aspect.
 */
public final class SegmentationMask {
    /** The class of each pixel, row by row. */
    public final int[] classes;
    public final int width;
    public final int height;

    public SegmentationMask(int[] classes, int width, int height) {
        if (width < 1 || height < 1 || classes.length != width * height) {
            throw new IllegalArgumentException("a " + width + "x" + height + " mask needs " + width * height
                    + " values, got " + classes.length);
        }
        this.classes = classes;
        this.width = width;
        this.height = height;
    }

    /**
     * The argmax over {@code classCount} of logits {@code [height][width][classCount]} resized to
     * {@code outWidth} x {@code outHeight} as TensorFlow's {@code ResizeBilinear} with
     * {@code align_corners=True} does it (float arithmetic in its order); ties go to the lower class.
     */
    public static SegmentationMask fromLogits(float[] logits, int width, int height, int classCount, int outWidth,
                                              int outHeight) {
        if (classCount < 1 || logits.length != width * height * classCount) {
            throw new IllegalArgumentException("logits of " + width + "x" + height + "x" + classCount + " need "
                    + (long) width * height * classCount + " values, got " + logits.length);
        }
        Axis xs = new Axis(width, outWidth);
        Axis ys = new Axis(height, outHeight);
        int[] out = new int[outWidth * outHeight];
        for (int y = 0; y < outHeight; y++) {
            int top = ys.lower[y] * width;
            int bottom = ys.upper[y] * width;
            float yLerp = ys.lerp[y];
            for (int x = 0; x < outWidth; x++) {
                int topLeft = (top + xs.lower[x]) * classCount;
                int topRight = (top + xs.upper[x]) * classCount;
                int bottomLeft = (bottom + xs.lower[x]) * classCount;
                int bottomRight = (bottom + xs.upper[x]) * classCount;
                float xLerp = xs.lerp[x];
                int best = 0;
                float bestValue = Float.NEGATIVE_INFINITY;
                for (int c = 0; c < classCount; c++) {
                    float upper = logits[topLeft + c] + (logits[topRight + c] - logits[topLeft + c]) * xLerp;
                    float lower = logits[bottomLeft + c] + (logits[bottomRight + c] - logits[bottomLeft + c]) * xLerp;
                    float value = upper + (lower - upper) * yLerp;
                    if (value > bestValue) {
                        best = c;
                        bestValue = value;
                    }
                }
                out[y * outWidth + x] = best;
            }
        }
        return new SegmentationMask(out, outWidth, outHeight);
    }

    /** A file's category mask ({@code --outputs mask}) resized to {@code outWidth} x {@code outHeight}, nearest. */
    public static SegmentationMask fromCategoryMask(int[] mask, int width, int height, int outWidth, int outHeight) {
        SegmentationMask source = new SegmentationMask(mask, width, height);
        int[] rows = nearest(height, outHeight);
        int[] columns = nearest(width, outWidth);
        int[] out = new int[outWidth * outHeight];
        for (int y = 0; y < outHeight; y++) {
            for (int x = 0; x < outWidth; x++) {
                out[y * outWidth + x] = source.classes[rows[y] * width + columns[x]];
            }
        }
        return new SegmentationMask(out, outWidth, outHeight);
    }

    /** The source index of every output position: the pixel under the output pixel's centre. */
    private static int[] nearest(int size, int outSize) {
        int[] index = new int[outSize];
        for (int i = 0; i < outSize; i++) {
            index[i] = (int) Math.min((i + 0.5) * size / outSize, size - 1);
        }
        return index;
    }

    /** TensorFlow's legacy bilinear sampling positions with aligned corners, for one axis. */
    private static final class Axis {
        final int[] lower;
        final int[] upper;
        final float[] lerp;

        Axis(int size, int outSize) {
            float scale = outSize > 1 ? (float) (size - 1) / (float) (outSize - 1) : (float) size / (float) outSize;
            lower = new int[outSize];
            upper = new int[outSize];
            lerp = new float[outSize];
            for (int i = 0; i < outSize; i++) {
                float position = (float) i * scale;
                float floor = (float) Math.floor(position);
                lower[i] = Math.max((int) floor, 0);
                upper[i] = Math.min((int) Math.ceil(position), size - 1);
                lerp[i] = position - floor;
            }
        }
    }

    /** One class that a mask shows, with its share of the pixels. */
    public static final class ClassShare {
        public final int classIndex;
        public final String name;
        public final double share;

        ClassShare(int classIndex, String name, double share) {
            this.classIndex = classIndex;
            this.name = name;
            this.share = share;
        }

        @Override
        public String toString() {
            return String.format("%s %.1f%%", name, 100.0 * share);
        }
    }

    /** The classes present, the largest share first (ties: the lower class first), named by the facts. */
    public List<ClassShare> shares(ModelFacts facts) {
        int highest = 0;
        for (int value : classes) {
            highest = Math.max(highest, value);
        }
        long[] counts = new long[highest + 1];
        for (int value : classes) {
            if (value >= 0) {
                counts[value]++;
            }
        }
        List<ClassShare> present = new ArrayList<>();
        for (int c = 0; c < counts.length; c++) {
            if (counts[c] > 0) {
                present.add(new ClassShare(c, facts.className(c), (double) counts[c] / classes.length));
            }
        }
        present.sort((a, b) -> a.share != b.share ? Double.compare(b.share, a.share)
                : Integer.compare(a.classIndex, b.classIndex));
        return Collections.unmodifiableList(present);
    }

    /**
     * The mask as ARGB pixels to draw over the image: each class in {@code palette}'s colour (0xRRGGBB) at
     * {@code alpha} (0 to 1); a class named "background" in the facts is left clear.
     */
    public int[] overlay(ModelFacts facts, int[] palette, float alpha) {
        int opacity = Math.round(Math.min(1.0f, Math.max(0.0f, alpha)) * 255.0f) << 24;
        int[] argb = new int[classes.length];
        for (int i = 0; i < classes.length; i++) {
            int c = classes[i];
            boolean clear = c < 0 || "background".equals(facts.className(c));
            argb[i] = clear ? 0 : opacity | (palette[c % palette.length] & 0xffffff);
        }
        return argb;
    }
}
