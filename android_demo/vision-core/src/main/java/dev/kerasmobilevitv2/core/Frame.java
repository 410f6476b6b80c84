package dev.kerasmobilevitv2.core;

/**
 * An image as ARGB pixels, row by row (Android's {@code Bitmap.getPixels}, Java's
 * {@code BufferedImage.getRGB}), and its turn upright: a camera frame comes in the sensor's orientation
 * with the clockwise rotation that makes it upright (CameraX's {@code ImageInfo.getRotationDegrees}).
 */
public final class Frame {
    public final int[] argb;
    public final int width;
    public final int height;

    public Frame(int[] argb, int width, int height) {
        if (width < 1 || height < 1 || argb.length != width * height) {
            throw new IllegalArgumentException("expected " + width + "x" + height + " = " + width * height
                    + " pixels, got " + argb.length);
        }
        this.argb = argb;
        this.width = width;
        this.height = height;
    }

    /** This frame turned clockwise by {@code degrees} (0, 90, 180 or 270); itself for 0. */
    public Frame rotatedClockwise(int degrees) {
        int turns = Math.floorMod(degrees, 360) / 90;
        if (Math.floorMod(degrees, 90) != 0) {
            throw new IllegalArgumentException("rotation must be a multiple of 90 degrees, got " + degrees);
        }
        if (turns == 0) {
            return this;
        }
        int outWidth = turns == 2 ? width : height;
        int outHeight = turns == 2 ? height : width;
        int[] out = new int[argb.length];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int to;
                if (turns == 1) {         // the top row becomes the right column
                    to = x * outWidth + (height - 1 - y);
                } else if (turns == 2) {
                    to = (height - 1 - y) * outWidth + (width - 1 - x);
                } else {                  // the top row becomes the left column
                    to = (width - 1 - x) * outWidth + y;
                }
                out[to] = argb[y * width + x];
            }
        }
        return new Frame(out, outWidth, outHeight);
    }
}
