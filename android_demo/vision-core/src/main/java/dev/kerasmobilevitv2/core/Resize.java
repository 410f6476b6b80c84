package dev.kerasmobilevitv2.core;

/**
 * Antialiased image resizing exactly as TensorFlow's {@code tf.image.resize(..., antialias=True)} does
 * it (its scale-and-translate kernel), which is what the Python pipeline prepares images with: half-pixel
 * centres, the kernel stretched by the shrink factor, weights normalised over the pixels inside the
 * image. Bicubic is Keys' cubic with a = -0.5, bilinear the triangle.
 */
public final class Resize {
    private Resize() {
    }

    public static boolean isSupported(String interpolation) {
        return "bicubic".equals(interpolation) || "bilinear".equals(interpolation);
    }

    private static float kernel(String interpolation, float x) {
        x = Math.abs(x);
        if ("bilinear".equals(interpolation)) {
            return x < 1.0f ? 1.0f - x : 0.0f;
        }
        if (x >= 2.0f) {
            return 0.0f;
        }
        if (x >= 1.0f) {
            return ((-0.5f * x + 2.5f) * x - 4.0f) * x + 2.0f;
        }
        return ((1.5f * x - 2.5f) * x) * x + 1.0f;
    }

    private static float radius(String interpolation) {
        return "bilinear".equals(interpolation) ? 1.0f : 2.0f;
    }

    /** For every output position: the first input index and the normalised weights of its span. */
    static final class Spans {
        final int[] starts;
        final float[][] weights;

        Spans(int[] starts, float[][] weights) {
            this.starts = starts;
            this.weights = weights;
        }
    }

    static Spans spans(int inputSize, int outputSize, String interpolation) {
        float scale = (float) outputSize / inputSize;
        float inverseScale = 1.0f / scale;
        float kernelScale = Math.max(inverseScale, 1.0f);
        float reach = radius(interpolation) * kernelScale;
        int[] starts = new int[outputSize];
        float[][] weights = new float[outputSize][];
        for (int x = 0; x < outputSize; x++) {
            float sample = (x + 0.5f) * inverseScale;
            int start = (int) Math.ceil(sample - reach - 0.5f);
            int end = (int) Math.floor(sample + reach - 0.5f);
            start = Math.min(Math.max(start, 0), inputSize - 1);
            end = Math.min(Math.max(end, 0), inputSize - 1) + 1;
            float[] span = new float[end - start];
            float total = 0.0f;
            for (int source = start; source < end; source++) {
                float weight = kernel(interpolation, ((source + 0.5f) - sample) / kernelScale);
                span[source - start] = weight;
                total += weight;
            }
            if (Math.abs(total) >= 1000.0f * Float.MIN_NORMAL) {
                for (int i = 0; i < span.length; i++) {
                    span[i] /= total;
                }
            }
            starts[x] = start;
            weights[x] = span;
        }
        return new Spans(starts, weights);
    }

    /**
     * Resizes RGB {@code pixels} ({@code [height][width][3]} as a flat float array) to the output size,
     * rounded to whole values and clipped to [0, 255] as the Python pipeline does.
     */
    public static float[] resizeRgb(float[] pixels, int height, int width, int outHeight, int outWidth,
                                    String interpolation) {
        Spans columns = spans(width, outWidth, interpolation);
        Spans rows = spans(height, outHeight, interpolation);
        float[] horizontal = new float[height * outWidth * 3];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < outWidth; x++) {
                float[] w = columns.weights[x];
                int start = columns.starts[x];
                for (int c = 0; c < 3; c++) {
                    float sum = 0.0f;
                    for (int i = 0; i < w.length; i++) {
                        sum += w[i] * pixels[(y * width + start + i) * 3 + c];
                    }
                    horizontal[(y * outWidth + x) * 3 + c] = sum;
                }
            }
        }
        float[] out = new float[outHeight * outWidth * 3];
        for (int y = 0; y < outHeight; y++) {
            float[] w = rows.weights[y];
            int start = rows.starts[y];
            for (int x = 0; x < outWidth; x++) {
                for (int c = 0; c < 3; c++) {
                    float sum = 0.0f;
                    for (int i = 0; i < w.length; i++) {
                        sum += w[i] * horizontal[((start + i) * outWidth + x) * 3 + c];
                    }
                    out[(y * outWidth + x) * 3 + c] = Math.min(255.0f, Math.max(0.0f, (float) Math.rint(sum)));
                }
            }
        }
        return out;
    }
}
