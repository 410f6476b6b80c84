package dev.kerasmobilevitv2.core;

/** PASCAL VOC's colour map, as the Python side draws masks (class 1 dark red, 2 green, ...; 255 cream). */
public final class Palette {
    private Palette() {
    }

    /** 256 colours as 0xRRGGBB. */
    public static int[] voc() {
        int[] palette = new int[256];
        for (int index = 0; index < 256; index++) {
            int value = index;
            int red = 0;
            int green = 0;
            int blue = 0;
            for (int bit = 0; bit < 8; bit++) {
                red |= (value & 1) << (7 - bit);
                green |= ((value >> 1) & 1) << (7 - bit);
                blue |= ((value >> 2) & 1) << (7 - bit);
                value >>= 3;
            }
            palette[index] = (red << 16) | (green << 8) | blue;
        }
        palette[255] = (224 << 16) | (224 << 8) | 192;
        return palette;
    }
}
