package dev.kerasmobilevitv2.core;

/**
 * A camera frame or photo to the model's input, as {@code mobilevitv2 eval} and {@code predict} prepare
 * images. A classifier's: resize (keeping the aspect) so the image covers size / crop fraction, cut out the
 * centre. A segmenter's or detector's: the whole image resized to the input size, the aspect not kept (so
 * their outputs cover the whole frame). Then scale to [0, inputMax], and for integer inputs quantize with
 * the input tensor's scale and zero point. Everything comes from {@link ModelFacts}; the tensor's
 * quantization comes from the interpreter.
 */
public final class Preprocessor {
    private Preprocessor() {
    }

    /** The size {@code [height, width]} the image is resized to before the centre crop (float32 as in Python). */
    public static int[] resizedSize(int height, int width, ModelFacts facts) {
        float coverHeight = (float) Math.floor((float) facts.inputHeight / facts.cropFraction);
        float coverWidth = (float) Math.floor((float) facts.inputWidth / facts.cropFraction);
        float factor = Math.max(coverHeight / (float) height, coverWidth / (float) width);
        int resizedHeight = (int) Math.max(Math.rint((float) height * factor), coverHeight);
        int resizedWidth = (int) Math.max(Math.rint((float) width * factor), coverWidth);
        return new int[] {resizedHeight, resizedWidth};
    }

    /**
     * The model's float input {@code [inputHeight][inputWidth][3]} (flat, RGB, in [0, inputMax]) from
     * ARGB pixels (Android's {@code Bitmap.getPixels}, Java's {@code BufferedImage.getRGB}), row by row.
     */
    public static float[] prepare(int[] argb, int width, int height, ModelFacts facts) {
        if (argb.length != width * height) {
            throw new IllegalArgumentException("expected " + width + "x" + height + " = " + width * height
                    + " pixels, got " + argb.length);
        }
        float[] rgb = new float[width * height * 3];
        for (int i = 0; i < argb.length; i++) {
            rgb[3 * i] = (argb[i] >> 16) & 0xff;
            rgb[3 * i + 1] = (argb[i] >> 8) & 0xff;
            rgb[3 * i + 2] = argb[i] & 0xff;
        }
        float scale = facts.inputMax / 255.0f;
        if (facts.task != ModelFacts.Task.CLASSIFICATION) {
            boolean same = height == facts.inputHeight && width == facts.inputWidth;
            float[] input = same ? rgb : Resize.resizeRgb(rgb, height, width, facts.inputHeight, facts.inputWidth,
                    facts.interpolation);
            for (int i = 0; i < input.length; i++) {
                input[i] *= scale;
            }
            return input;
        }
        int[] size = resizedSize(height, width, facts);
        float[] resized = Resize.resizeRgb(rgb, height, width, size[0], size[1], facts.interpolation);
        int top = (size[0] - facts.inputHeight) / 2;
        int left = (size[1] - facts.inputWidth) / 2;
        float[] input = new float[facts.inputHeight * facts.inputWidth * 3];
        for (int y = 0; y < facts.inputHeight; y++) {
            int from = ((top + y) * size[1] + left) * 3;
            for (int i = 0; i < facts.inputWidth * 3; i++) {
                input[y * facts.inputWidth * 3 + i] = resized[from + i] * scale;
            }
        }
        return input;
    }

    /**
     * Quantizes a float input for an int8 or uint8 input tensor: {@code round(x / scale + zeroPoint)},
     * clipped to the type's range. The bytes are what the interpreter's input buffer takes.
     */
    public static byte[] quantize(float[] input, float scale, int zeroPoint, boolean signed) {
        int min = signed ? -128 : 0;
        int max = signed ? 127 : 255;
        byte[] out = new byte[input.length];
        for (int i = 0; i < input.length; i++) {
            long q = (long) Math.rint(input[i] / scale + zeroPoint);
            out[i] = (byte) Math.min(max, Math.max(min, q));
        }
        return out;
    }
}
